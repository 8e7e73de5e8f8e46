//! Users and groups: search, paging, each user's effective roles with the
//! reason for each, lock state; locking (with a required reason) and
//! unlocking a user.

use actix_web::{HttpRequest, web};
use askama::Template;
use serde::Deserialize;
use store::{LockInfo, Resource};

use super::{Page, Pager, encode_query, form, page_number, param, query, scoped, when};
use crate::auth::{Read, Write};
use crate::console::render::{FormErrors, Layout, html, ok, see_other, wants_fragment};
use crate::service::{self, DirectoryQuery, UserDetails};

/// Users or groups per page.
const PER_PAGE: u64 = 25;

/// A text search as a SCIM filter over `attributes` (`co`, OR-ed).
fn contains_filter(text: &str, attributes: &[&str]) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let quoted = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned());
    Some(
        attributes
            .iter()
            .map(|a| format!("{a} co {quoted}"))
            .collect::<Vec<_>>()
            .join(" or "),
    )
}

fn text(document: &serde_json::Value, key: &str) -> String {
    document
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// One role a user has, and why.
pub(crate) struct RoleRow {
    pub(crate) role: String,
    pub(crate) reason: String,
}

/// A user as the console shows them.
pub(crate) struct UserRow {
    pub(crate) id: String,
    pub(crate) user_name: String,
    pub(crate) display_name: String,
    pub(crate) active: bool,
    pub(crate) roles: Vec<RoleRow>,
    /// Roles not derived yet.
    pub(crate) pending: bool,
    pub(crate) lock: Option<LockRow>,
    pub(crate) groups: Vec<(String, String)>,
}

/// A role-lock as shown.
pub(crate) struct LockRow {
    pub(crate) roles: String,
    pub(crate) reason: String,
    pub(crate) by: String,
    pub(crate) at: String,
}

impl LockRow {
    pub(crate) fn of(l: &LockInfo) -> LockRow {
        LockRow {
            roles: if l.roles.is_empty() {
                "no role".to_owned()
            } else {
                l.roles.join(", ")
            },
            reason: l.reason.clone(),
            by: l.locked_by.clone(),
            at: when(&l.locked_at),
        }
    }
}

impl UserRow {
    fn of(d: &UserDetails) -> UserRow {
        let document = &d.user.document;
        UserRow {
            id: d.user.id.clone(),
            user_name: text(document, "userName"),
            display_name: text(document, "displayName"),
            active: document
                .get("active")
                .and_then(|v| v.as_bool())
                .unwrap_or(true),
            roles: d
                .effective
                .as_ref()
                .map(|e| {
                    e.roles
                        .iter()
                        .map(|r| RoleRow {
                            role: r.role.clone(),
                            reason: r.reason.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            pending: d.effective.is_none(),
            lock: d.lock.as_ref().map(LockRow::of),
            groups: d
                .groups
                .iter()
                .map(|g| (g.id.clone(), g.display.clone()))
                .collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    page: Option<u64>,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    layout: Layout,
    q: String,
    rows: Vec<UserRow>,
    pager: Pager,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/users.html", block = "results")]
struct UsersResults {
    layout: Layout,
    rows: Vec<UserRow>,
    pager: Pager,
    error: Option<String>,
}

/// `GET /console/t/{tenant}/users?q=&page=`.
pub(crate) async fn users(req: HttpRequest) -> Page {
    let ctx = scoped::<Read>(&req).await?;
    let q: SearchQuery = query(&req)?;
    let page = page_number(q.page);
    let layout = Layout::new(&req, "Users", "users", Some(ctx.tenant()))?;
    let search = DirectoryQuery {
        filter: contains_filter(&q.q, &["userName", "displayName", "emails.value"]),
        start_index: Some((page - 1) * PER_PAGE + 1),
        count: Some(PER_PAGE),
    };
    let (rows, total, error) = match service::list_users(&ctx, &search).await {
        Ok(found) => (
            found.users.iter().map(UserRow::of).collect::<Vec<_>>(),
            found.total,
            None,
        ),
        Err(e) => {
            let errors = FormErrors::from_error(e, &[])?;
            (Vec::new(), 0, errors.get("").map(str::to_owned))
        }
    };
    let pager = Pager::new(
        &format!("{}/users", layout.base()),
        &encode_query(&[("q", &q.q)]),
        page,
        PER_PAGE,
        rows.len() as u64,
        total,
    );
    if wants_fragment(&req, "results") {
        return ok(&UsersResults {
            layout,
            rows,
            pager,
            error,
        });
    }
    ok(&UsersPage {
        layout,
        q: q.q,
        rows,
        pager,
        error,
    })
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage {
    layout: Layout,
    user: UserRow,
    external_id: String,
    created: String,
    modified: String,
    /// Every role the policy defines, for the lock form.
    roles: Vec<String>,
    lock_roles: Vec<String>,
    reason: String,
    /// On a super tenant, for operators: where the user was copied.
    copies: Vec<CopyRow>,
    errors: FormErrors,
}

/// A copy of a super tenant's user in a child.
pub(crate) struct CopyRow {
    pub(crate) child: String,
    pub(crate) copy_id: String,
    pub(crate) routed: bool,
    pub(crate) rules: String,
}

impl UserPage {
    fn checked(&self, role: &str) -> bool {
        self.lock_roles.iter().any(|r| r == role)
    }
}

async fn user_page(
    req: &HttpRequest,
    lock_roles: Option<Vec<String>>,
    reason: String,
    errors: FormErrors,
) -> Page {
    let ctx = scoped::<Read>(req).await?;
    let details = service::get_user(&ctx, &param(req, "id")).await?;
    let policy = service::get_policy(&ctx).await?;
    let user = UserRow::of(&details);
    let Resource {
        document,
        created,
        last_modified,
        ..
    } = &details.user;
    let lock_roles = lock_roles.unwrap_or_else(|| {
        details
            .lock
            .as_ref()
            .map(|l| l.roles.clone())
            .unwrap_or_default()
    });
    let layout = Layout::new(req, user.user_name.clone(), "users", Some(ctx.tenant()))?;
    // The API lists copies for operators only; so does the page.
    let copies = if layout.operator && ctx.tenant().kind() == store::TenantKind::Super {
        ctx.store()
            .copies(&details.user.id)
            .await?
            .into_iter()
            .map(|c| CopyRow {
                child: c.child,
                copy_id: c.copy_id,
                routed: c.routed,
                rules: c.rules.join(", "),
            })
            .collect()
    } else {
        Vec::new()
    };
    let status = errors.status();
    let page = UserPage {
        layout,
        copies,
        external_id: text(document, "externalId"),
        created: when(created),
        modified: when(last_modified),
        roles: policy.policy.roles.iter().map(|r| r.name.clone()).collect(),
        lock_roles,
        reason,
        user,
        errors,
    };
    Ok(html(status, &page))
}

/// `GET /console/t/{tenant}/users/{id}`.
pub(crate) async fn user(req: HttpRequest) -> Page {
    user_page(&req, None, String::new(), FormErrors::none()).await
}

#[derive(Debug, Default, Deserialize)]
struct LockForm {
    #[serde(default)]
    role: Vec<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /console/t/{tenant}/users/{id}/lock`: lock to the checked roles
/// (none: no role at all) for the reason given.
pub(crate) async fn lock(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let f: LockForm = form(&body)?;
    let id = param(&req, "id");
    if f.reason.trim().is_empty() {
        let errors = FormErrors::on(
            "reason",
            "say why this user is locked; the audit log keeps it",
        );
        return user_page(&req, Some(f.role), f.reason, errors).await;
    }
    match service::lock_user(&ctx, &id, f.role.clone(), f.reason.trim()).await {
        Ok(_) => see_other(format!("{}/users/{id}", base(&ctx))),
        Err(e) => {
            let errors = FormErrors::from_error(e, &["reason", "role"])?;
            user_page(&req, Some(f.role), f.reason, errors).await
        }
    }
}

/// `POST /console/t/{tenant}/users/{id}/unlock`.
pub(crate) async fn unlock(req: HttpRequest) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let id = param(&req, "id");
    service::unlock_user(&ctx, &id).await?;
    see_other(format!("{}/users/{id}", base(&ctx)))
}

fn base(ctx: &service::TenantContext) -> String {
    format!("{}/t/{}", crate::console::CONSOLE_PATH, ctx.tenant().slug())
}

/// A group as listed.
pub(crate) struct GroupRow {
    pub(crate) id: String,
    pub(crate) display_name: String,
    pub(crate) external_id: String,
}

#[derive(Template)]
#[template(path = "console/groups.html")]
struct GroupsPage {
    layout: Layout,
    q: String,
    rows: Vec<GroupRow>,
    pager: Pager,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/groups.html", block = "results")]
struct GroupsResults {
    rows: Vec<GroupRow>,
    pager: Pager,
    error: Option<String>,
}

/// `GET /console/t/{tenant}/groups?q=&page=`.
pub(crate) async fn groups(req: HttpRequest) -> Page {
    let ctx = scoped::<Read>(&req).await?;
    let q: SearchQuery = query(&req)?;
    let page = page_number(q.page);
    let layout = Layout::new(&req, "Groups", "groups", Some(ctx.tenant()))?;
    let search = DirectoryQuery {
        filter: contains_filter(&q.q, &["displayName"]),
        start_index: Some((page - 1) * PER_PAGE + 1),
        count: Some(PER_PAGE),
    };
    let (rows, total, error) = match service::list_groups(&ctx, &search).await {
        Ok(found) => (
            found
                .groups
                .iter()
                .map(|g| GroupRow {
                    id: g.id.clone(),
                    display_name: text(&g.document, "displayName"),
                    external_id: text(&g.document, "externalId"),
                })
                .collect::<Vec<_>>(),
            found.total,
            None,
        ),
        Err(e) => {
            let errors = FormErrors::from_error(e, &[])?;
            (Vec::new(), 0, errors.get("").map(str::to_owned))
        }
    };
    let pager = Pager::new(
        &format!("{}/groups", layout.base()),
        &encode_query(&[("q", &q.q)]),
        page,
        PER_PAGE,
        rows.len() as u64,
        total,
    );
    if wants_fragment(&req, "results") {
        return ok(&GroupsResults { rows, pager, error });
    }
    ok(&GroupsPage {
        layout,
        q: q.q,
        rows,
        pager,
        error,
    })
}

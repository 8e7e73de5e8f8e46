//! Deletion safety (docs/deletion-safety.md): the policy and its edit
//! form, held deletions and deactivations (released, or discarded after a
//! confirmation), protected users, soft-deleted users with restore, and
//! erasure, which only operators are offered, on a confirmation page that
//! asks for the userName again.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, ResponseError, web};
use askama::Template;
use serde::Deserialize;
use store::safety::{
    DeletedUser, DeletionPolicy, HeldChange, HeldSelection, ProtectedUser, SafetyState,
};

use super::{Page, encode_query, form, param, query, scoped, when, when_opt};
use crate::auth::{OperatorOnly, Read, Write};
use crate::console::CONSOLE_PATH;
use crate::console::render::{ConsoleError, FormErrors, Layout, html, ok, see_other};
use crate::error::AdminError;
use crate::service::{self, ServiceError, TenantContext, safety};

/// Held changes, protected and deleted users a page lists at most.
const LISTED: u64 = 1000;

fn base(ctx: &TenantContext) -> String {
    format!("{CONSOLE_PATH}/t/{}", ctx.tenant().slug())
}

/// `errors` with a message that names no field moved to `group` (the form
/// it belongs to), keeping their status.
fn regroup(errors: FormErrors, group: &str) -> FormErrors {
    match errors.get("") {
        Some(message) => FormErrors::on(group, message).with_status(errors.status()),
        None => errors,
    }
}

/// A refusal the form shows next to `group`: its input errors (400, 409,
/// 412, 429) and "not found" (what was named does not exist); anything
/// else is an error page.
fn refused(error: ServiceError, fields: &[&str], group: &str) -> Result<FormErrors, ConsoleError> {
    let error = ConsoleError::from(error);
    if error.0.status_code() == StatusCode::NOT_FOUND {
        let message = error.0.public_message();
        return Ok(FormErrors::on(group, message).with_status(StatusCode::NOT_FOUND));
    }
    Ok(regroup(FormErrors::from_error(error, fields)?, group))
}

/// The policy form: the fields carry the API's names, which the store's
/// messages use, so a refusal lands next to its field.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct PolicyForm {
    #[serde(default, rename = "maxDeletions")]
    pub(crate) max_deletions: String,
    #[serde(default, rename = "maxPercent")]
    pub(crate) max_percent: String,
    #[serde(default, rename = "windowMinutes")]
    pub(crate) window_minutes: String,
    #[serde(default, rename = "graceDays")]
    pub(crate) grace_days: String,
    /// The policy version the form was made from.
    #[serde(default)]
    pub(crate) version: String,
}

impl PolicyForm {
    fn of(s: &SafetyState) -> PolicyForm {
        let opt = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_default();
        PolicyForm {
            max_deletions: opt(s.policy.max_deletions),
            max_percent: opt(s.policy.max_percent),
            window_minutes: s.policy.window_minutes.to_string(),
            grace_days: s.policy.grace_days.to_string(),
            version: s.version.to_string(),
        }
    }

    /// The policy and the version it expects, or an error next to the
    /// field that does not read.
    fn policy(&self) -> Result<(DeletionPolicy, u64), FormErrors> {
        let number = |text: &str, field: &str| -> Result<Option<u32>, FormErrors> {
            match text.trim() {
                "" => Ok(None),
                t => t.parse::<u32>().map(Some).map_err(|_| {
                    FormErrors::on(field, "enter a whole number (0 or more), without units")
                }),
            }
        };
        let required = |text: &str, field: &str| -> Result<u32, FormErrors> {
            number(text, field)?.ok_or_else(|| FormErrors::on(field, "enter a whole number"))
        };
        let policy = DeletionPolicy {
            max_deletions: number(&self.max_deletions, "maxDeletions")?,
            max_percent: number(&self.max_percent, "maxPercent")?,
            window_minutes: required(&self.window_minutes, "windowMinutes")?,
            grace_days: required(&self.grace_days, "graceDays")?,
        };
        let version = self.version.trim().parse::<u64>().map_err(|_| {
            FormErrors::on(
                "policy",
                "the form lost the policy version it was made from; reload the page",
            )
        })?;
        Ok((policy, version))
    }
}

/// What the protect form had.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct ProtectForm {
    /// A userName or id.
    #[serde(default)]
    pub(crate) user: String,
    #[serde(default)]
    pub(crate) reason: String,
}

/// A held change as listed.
pub(crate) struct HeldRow {
    pub(crate) id: i64,
    pub(crate) user_id: String,
    pub(crate) user_name: String,
    pub(crate) reason: &'static str,
    pub(crate) event_type: &'static str,
    pub(crate) held_at: String,
}

impl HeldRow {
    fn of(h: &HeldChange) -> HeldRow {
        HeldRow {
            id: h.id,
            user_id: h.user_id.clone(),
            user_name: h.user_name.clone().unwrap_or_default(),
            reason: h.reason.as_str(),
            event_type: h.event_type.as_str(),
            held_at: when(&h.held_at),
        }
    }
}

/// A protected user as listed.
pub(crate) struct ProtectedRow {
    pub(crate) user_id: String,
    /// Their userName while they exist.
    pub(crate) user_name: Option<String>,
    pub(crate) reason: String,
    pub(crate) by: String,
    pub(crate) since: String,
}

/// A soft-deleted user as listed.
pub(crate) struct DeletedRow {
    pub(crate) id: String,
    pub(crate) user_name: String,
    pub(crate) deleted_at: String,
    pub(crate) purge_after: String,
}

impl DeletedRow {
    fn of(d: &DeletedUser) -> DeletedRow {
        DeletedRow {
            id: d.id.clone(),
            user_name: d.user_name.clone(),
            deleted_at: when(&d.deleted_at),
            purge_after: when(&d.purge_after),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct SafetyQuery {
    released: Option<u64>,
    discarded: Option<u64>,
    #[serde(default)]
    saved: String,
    #[serde(default)]
    erased: String,
}

impl SafetyQuery {
    fn notice(&self) -> Option<String> {
        let changes = |n: u64| {
            if n == 1 {
                "1 held change".to_owned()
            } else {
                format!("{n} held changes")
            }
        };
        if let Some(n) = self.released {
            return Some(format!("{} released to the applications.", changes(n)));
        }
        if let Some(n) = self.discarded {
            return Some(format!(
                "{} discarded: the applications keep those users.",
                changes(n)
            ));
        }
        if !self.saved.is_empty() {
            return Some("The deletion policy was saved.".to_owned());
        }
        if !self.erased.is_empty() {
            return Some(format!(
                "The personal data of user {} was erased.",
                self.erased
            ));
        }
        None
    }
}

#[derive(Template)]
#[template(path = "console/safety.html")]
struct SafetyPage {
    layout: Layout,
    tripped: bool,
    window_started: String,
    window_count: u64,
    held_count: u64,
    version: u64,
    policy: PolicyForm,
    held: Vec<HeldRow>,
    /// Held changes checked when the form was sent back.
    selected: Vec<i64>,
    protected: Vec<ProtectedRow>,
    protect: ProtectForm,
    deleted: Vec<DeletedRow>,
    notice: Option<String>,
    errors: FormErrors,
}

impl SafetyPage {
    fn checked(&self, id: &i64) -> bool {
        self.selected.contains(id)
    }
}

/// What a failed submission sends back into the page.
#[derive(Default)]
struct Kept {
    policy: Option<PolicyForm>,
    selected: Vec<i64>,
    protect: ProtectForm,
}

async fn protected_rows(
    ctx: &TenantContext,
    list: Vec<ProtectedUser>,
) -> Result<Vec<ProtectedRow>, ServiceError> {
    let mut rows = Vec::with_capacity(list.len());
    for p in list {
        let user_name = match service::get_user(ctx, &p.user_id).await {
            Ok(d) => d.user.document["userName"].as_str().map(str::to_owned),
            Err(
                ServiceError::Store(store::StoreError::NotFound(_)) | ServiceError::NotFound(_),
            ) => None,
            Err(e) => return Err(e),
        };
        rows.push(ProtectedRow {
            user_id: p.user_id,
            user_name,
            reason: p.reason,
            by: p.actor,
            since: when(&p.since),
        });
    }
    Ok(rows)
}

async fn safety_page(
    req: &HttpRequest,
    notice: Option<String>,
    kept: Kept,
    errors: FormErrors,
) -> Page {
    let ctx = scoped::<Read>(req).await?;
    let state = safety::state(&ctx).await?;
    let held = safety::held(&ctx, LISTED).await?;
    let protected = protected_rows(&ctx, safety::protected(&ctx).await?).await?;
    let deleted = safety::deleted(&ctx, LISTED).await?;
    let status = errors.status();
    let page = SafetyPage {
        layout: Layout::new(req, "Deletion safety", "safety", Some(ctx.tenant()))?,
        tripped: state.tripped,
        window_started: when_opt(&state.window_started_at),
        window_count: state.window_count,
        held_count: state.held,
        version: state.version,
        policy: kept.policy.unwrap_or_else(|| PolicyForm::of(&state)),
        held: held.iter().map(HeldRow::of).collect(),
        selected: kept.selected,
        protected,
        protect: kept.protect,
        deleted: deleted.iter().map(DeletedRow::of).collect(),
        notice,
        errors,
    };
    Ok(html(status, &page))
}

/// `GET /console/t/{tenant}/safety`.
pub(crate) async fn page(req: HttpRequest) -> Page {
    let q: SafetyQuery = query(&req)?;
    safety_page(&req, q.notice(), Kept::default(), FormErrors::none()).await
}

/// `POST /console/t/{tenant}/safety/policy`: replaces the policy, if it is
/// still the version the form was made from.
pub(crate) async fn set_policy(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let f: PolicyForm = form(&body)?;
    let keep = |f: PolicyForm| Kept {
        policy: Some(f),
        ..Kept::default()
    };
    let (policy, version) = match f.policy() {
        Ok(p) => p,
        Err(errors) => return safety_page(&req, None, keep(f), errors).await,
    };
    match safety::set_policy(&ctx, policy, Some(version)).await {
        Ok(_) => see_other(format!("{}/safety?saved=policy", base(&ctx))),
        Err(e) => {
            let fields = ["maxDeletions", "maxPercent", "windowMinutes", "graceDays"];
            let mut errors = refused(e, &fields, "policy")?;
            if errors.status() == StatusCode::PRECONDITION_FAILED {
                errors = FormErrors::on(
                    "policy",
                    "the policy changed since this page was loaded; nothing was saved. \
                     Reload the page and make the change again.",
                )
                .with_status(StatusCode::PRECONDITION_FAILED);
            }
            safety_page(&req, None, keep(f), errors).await
        }
    }
}

/// Which held changes a form names: `all=yes`, or the checked ids.
#[derive(Debug, Default, Deserialize)]
struct HeldForm {
    #[serde(default)]
    id: Vec<String>,
    #[serde(default)]
    all: String,
}

impl HeldForm {
    /// The selection, or why there is none (next to the held changes).
    fn selection(&self) -> Result<(HeldSelection, Vec<i64>), FormErrors> {
        if self.all == "yes" {
            return Ok((HeldSelection::All, Vec::new()));
        }
        let ids = self
            .id
            .iter()
            .map(|i| i.trim().parse::<i64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| FormErrors::on("held", "a held change is named by its number"))?;
        if ids.is_empty() {
            return Err(FormErrors::on("held", "select at least one held change"));
        }
        Ok((HeldSelection::Ids(ids.clone()), ids))
    }

    /// The checked ids that read, to check them again.
    fn checked(&self) -> Vec<i64> {
        self.id
            .iter()
            .filter_map(|i| i.trim().parse().ok())
            .collect()
    }
}

/// The safety page again with the held changes' error and the checked
/// boxes kept.
async fn held_refused(req: &HttpRequest, f: &HeldForm, errors: FormErrors) -> Page {
    let kept = Kept {
        selected: f.checked(),
        ..Kept::default()
    };
    safety_page(req, None, kept, errors).await
}

/// `POST /console/t/{tenant}/safety/held/release`: the applications hear
/// of the selected held changes (or all) now.
pub(crate) async fn release(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let f: HeldForm = form(&body)?;
    let (which, _) = match f.selection() {
        Ok(s) => s,
        Err(errors) => return held_refused(&req, &f, errors).await,
    };
    match safety::release(&ctx, which).await {
        Ok(n) => see_other(format!("{}/safety?released={n}", base(&ctx))),
        Err(e) => {
            let errors = refused(e, &[], "held")?;
            held_refused(&req, &f, errors).await
        }
    }
}

/// `POST /console/t/{tenant}/safety/held/discard/review`: the selected
/// held changes to the discard confirmation (nothing changes here).
pub(crate) async fn review_discard(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let f: HeldForm = form(&body)?;
    let ids = match f.selection() {
        Ok((_, ids)) => ids,
        Err(errors) => return held_refused(&req, &f, errors).await,
    };
    let pairs: Vec<String> = ids.iter().map(i64::to_string).collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|i| ("id", i.as_str())).collect();
    see_other(format!(
        "{}/safety/held/discard?{}",
        base(&ctx),
        encode_query(&pairs)
    ))
}

#[derive(Template)]
#[template(path = "console/held_discard.html")]
struct DiscardPage {
    layout: Layout,
    /// Every held change (else those listed).
    all: bool,
    rows: Vec<HeldRow>,
    /// Held now, in all.
    held_count: u64,
}

#[derive(Debug, Default, Deserialize)]
struct DiscardQuery {
    #[serde(default)]
    id: Vec<String>,
}

/// `GET /console/t/{tenant}/safety/held/discard?id=..`: what discarding
/// these held changes (none named: all of them) does.
pub(crate) async fn confirm_discard(req: HttpRequest) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let q: DiscardQuery = query(&req)?;
    let ids =
        q.id.iter()
            .map(|i| i.trim().parse::<i64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| AdminError::BadRequest("a held change is named by its number".into()))?;
    let state = safety::state(&ctx).await?;
    let held = safety::held(&ctx, LISTED).await?;
    let all = ids.is_empty();
    let rows: Vec<HeldRow> = held
        .iter()
        .filter(|h| all || ids.contains(&h.id))
        .map(HeldRow::of)
        .collect();
    if !all && rows.len() != ids.len() {
        return Err(ServiceError::Conflict(
            "some of these ids name no held change (released or discarded already?)".into(),
        )
        .into());
    }
    ok(&DiscardPage {
        layout: Layout::new(&req, "Discard held changes", "safety", Some(ctx.tenant()))?,
        all,
        rows,
        held_count: state.held,
    })
}

/// `POST /console/t/{tenant}/safety/held/discard`: the applications never
/// hear of the named held changes (or all).
pub(crate) async fn discard(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let f: HeldForm = form(&body)?;
    let (which, _) = match f.selection() {
        Ok(s) => s,
        Err(errors) => return held_refused(&req, &f, errors).await,
    };
    match safety::discard(&ctx, which).await {
        Ok(n) => see_other(format!("{}/safety?discarded={n}", base(&ctx))),
        Err(e) => {
            let errors = refused(e, &[], "held")?;
            held_refused(&req, &f, errors).await
        }
    }
}

/// `POST /console/t/{tenant}/safety/protected`: protects the user named by
/// userName or id, for the reason given.
pub(crate) async fn protect(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let f: ProtectForm = form(&body)?;
    let kept = || Kept {
        protect: f.clone(),
        ..Kept::default()
    };
    if f.user.trim().is_empty() {
        let errors = FormErrors::on("user", "enter the user's userName or id");
        return safety_page(&req, None, kept(), errors).await;
    }
    if f.reason.trim().is_empty() {
        let errors = FormErrors::on(
            "reason",
            "say why this user is protected; the audit log keeps it",
        );
        return safety_page(&req, None, kept(), errors).await;
    }
    let user = match service::find_user(&ctx, f.user.trim()).await {
        Ok(user) => user,
        Err(e) => {
            let errors = refused(e, &[], "user")?;
            return safety_page(&req, None, kept(), errors).await;
        }
    };
    match safety::protect(&ctx, &user.id, f.reason.trim()).await {
        Ok(_) => see_other(format!("{}/safety#protected", base(&ctx))),
        Err(e) => {
            let errors = refused(e, &["reason"], "user")?;
            safety_page(&req, None, kept(), errors).await
        }
    }
}

/// `POST /console/t/{tenant}/safety/protected/{id}/unprotect`.
pub(crate) async fn unprotect(req: HttpRequest) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    safety::unprotect(&ctx, &param(&req, "id")).await?;
    see_other(format!("{}/safety#protected", base(&ctx)))
}

/// `POST /console/t/{tenant}/safety/deleted/{id}/restore`: the user is
/// back with the same id; to their page.
pub(crate) async fn restore(req: HttpRequest) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    match safety::restore(&ctx, &param(&req, "id")).await {
        Ok(user) => see_other(format!("{}/users/{}", base(&ctx), user.id)),
        Err(e) => {
            // Another user took the userName meanwhile: say so on the page.
            let errors = regroup(FormErrors::from_error(e, &[])?, "deleted");
            safety_page(&req, None, Kept::default(), errors).await
        }
    }
}

#[derive(Template)]
#[template(path = "console/erase.html")]
struct ErasePage {
    layout: Layout,
    id: String,
    user_name: String,
    /// Soft-deleted (else live).
    deleted: bool,
    confirm: String,
    errors: FormErrors,
}

/// The userName of user `id`, live or soft-deleted, and whether deleted.
async fn erasable(ctx: &TenantContext, id: &str) -> Result<(String, bool), ConsoleError> {
    match service::get_user(ctx, id).await {
        Ok(d) => {
            let name = d.user.document["userName"].as_str().unwrap_or_default();
            return Ok((name.to_owned(), false));
        }
        Err(ServiceError::Store(store::StoreError::NotFound(_)) | ServiceError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    safety::deleted(ctx, LISTED)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .map(|d| (d.user_name, true))
        .ok_or_else(|| ServiceError::NotFound(format!("user {id}")).into())
}

async fn erase_page(req: &HttpRequest, confirm: String, errors: FormErrors) -> Page {
    let ctx = scoped::<OperatorOnly>(req).await?;
    let id = param(req, "id");
    let (user_name, deleted) = erasable(&ctx, &id).await?;
    let status = errors.status();
    let page = ErasePage {
        layout: Layout::new(req, "Erase a user", "safety", Some(ctx.tenant()))?,
        id,
        user_name,
        deleted,
        confirm,
        errors,
    };
    Ok(html(status, &page))
}

/// `GET /console/t/{tenant}/users/{id}/erase`: what erasing does
/// (operators only, as in the API).
pub(crate) async fn confirm_erase(req: HttpRequest) -> Page {
    erase_page(&req, String::new(), FormErrors::none()).await
}

#[derive(Debug, Default, Deserialize)]
struct EraseForm {
    /// The user's userName, typed again.
    #[serde(default)]
    confirm: String,
}

/// `POST /console/t/{tenant}/users/{id}/erase`: erases when the userName
/// was typed again.
pub(crate) async fn erase(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<OperatorOnly>(&req).await?;
    let f: EraseForm = form(&body)?;
    let id = param(&req, "id");
    let (user_name, _) = erasable(&ctx, &id).await?;
    if f.confirm.trim() != user_name {
        let errors = FormErrors::on(
            "confirm",
            format!("type {user_name} exactly to confirm the erasure"),
        );
        return erase_page(&req, f.confirm, errors).await;
    }
    // The userName was repeated; the service's own confirmation is the id.
    match safety::erase(&ctx, &id, Some(&id)).await {
        Ok(_) => see_other(format!("{}/safety?erased={id}", base(&ctx))),
        Err(e) => {
            let errors = FormErrors::from_error(e, &["confirm"])?;
            erase_page(&req, f.confirm, errors).await
        }
    }
}

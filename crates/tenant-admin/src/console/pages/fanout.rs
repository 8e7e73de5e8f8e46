//! Super tenants (operators): a tenant's kind, its children, and its
//! routing rules, edited as the JSON the API takes, previewed with the
//! service's dry run (who would enter and leave each child) before they
//! are saved; saving queues the re-route job, whose progress has a page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, ResponseError, web};
use askama::Template;
use serde::Deserialize;
use store::TenantKind;
use store::fanout::{CopiesOnUnlink, OnUnroute};
use store::routing::RuleSpec;

use super::{Page, form, operator, param, scoped, when};
use crate::auth::{self, Read};
use crate::console::CONSOLE_PATH;
use crate::console::render::{FormErrors, Layout, html, ok, see_other};
use crate::service::{self, RoutingOutcome};

/// A child as listed.
pub(crate) struct ChildRow {
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) on_unroute: &'static str,
    pub(crate) linked: String,
}

/// One child in a dry run.
pub(crate) struct MoveRow {
    pub(crate) child: String,
    pub(crate) users_entering: u64,
    pub(crate) users_leaving: u64,
    pub(crate) groups_entering: u64,
    pub(crate) groups_leaving: u64,
    pub(crate) entering: String,
    pub(crate) leaving: String,
}

/// A dry run of proposed rules.
pub(crate) struct RoutingDryRun {
    pub(crate) users: u64,
    pub(crate) groups: u64,
    pub(crate) moves: Vec<MoveRow>,
    pub(crate) version: u64,
}

#[derive(Template)]
#[template(path = "console/routing.html")]
struct RoutingPage {
    layout: Layout,
    is_super: bool,
    children: Vec<ChildRow>,
    rules: String,
    version: u64,
    preview: Option<RoutingDryRun>,
    child_slug: String,
    errors: FormErrors,
}

async fn routing_page(
    req: &HttpRequest,
    rules_text: Option<String>,
    preview: Option<RoutingDryRun>,
    child_slug: String,
    errors: FormErrors,
) -> Page {
    let caller = operator(req)?;
    let ctx = scoped::<Read>(req).await?;
    let state = auth::state(req)?;
    let admin = state.store.admin();
    let tenant = ctx.tenant().clone();
    let is_super = tenant.kind() == TenantKind::Super;
    let (children, rules, version) = if is_super {
        let children = service::list_children(&admin, tenant.slug())
            .await?
            .into_iter()
            .map(|c| ChildRow {
                slug: c.tenant.slug().to_owned(),
                name: c.tenant.name().to_owned(),
                on_unroute: match c.on_unroute {
                    OnUnroute::Deactivate => "deactivate",
                    OnUnroute::Delete => "delete",
                },
                linked: when(&c.linked_at),
            })
            .collect();
        let policy = service::routing_policy(&admin, &caller.actor(), tenant.slug()).await?;
        let text = serde_json::to_string_pretty(&policy.rules).unwrap_or_else(|_| "[]".into());
        (children, text, policy.version)
    } else {
        (Vec::new(), "[]".to_owned(), 0)
    };
    let status = errors.status();
    let page = RoutingPage {
        layout: Layout::new(req, "Super tenant", "routing", Some(&tenant))?,
        is_super,
        children,
        rules: rules_text.unwrap_or(rules),
        version,
        preview,
        child_slug,
        errors,
    };
    Ok(html(status, &page))
}

/// `GET /console/t/{tenant}/routing`.
pub(crate) async fn page(req: HttpRequest) -> Page {
    routing_page(&req, None, None, String::new(), FormErrors::none()).await
}

#[derive(Debug, Default, Deserialize)]
struct RulesForm {
    #[serde(default)]
    rules: String,
    #[serde(default)]
    version: Option<u64>,
    /// `preview` or `save`.
    #[serde(default)]
    action: String,
}

/// `POST /console/t/{tenant}/routing`: preview the rules, or save them
/// (with the version previewed against).
pub(crate) async fn change(req: HttpRequest, body: web::Bytes) -> Page {
    let caller = operator(&req)?;
    let ctx = scoped::<Read>(&req).await?;
    let f: RulesForm = form(&body)?;
    let rules: Vec<RuleSpec> = match serde_json::from_str(&f.rules) {
        Ok(rules) => rules,
        Err(e) => {
            let errors =
                FormErrors::on("rules", format!("the rules are not valid JSON rules: {e}"));
            return routing_page(&req, Some(f.rules), None, String::new(), errors).await;
        }
    };
    let state = auth::state(&req)?;
    let admin = state.store.admin();
    let save = f.action == "save";
    let expected = if save { f.version } else { None };
    match service::change_routing(
        &admin,
        &caller.actor(),
        ctx.tenant().slug(),
        rules,
        expected,
        !save,
    )
    .await
    {
        Ok(RoutingOutcome::DryRun(preview)) => {
            let version = service::routing_policy(&admin, &caller.actor(), ctx.tenant().slug())
                .await?
                .version;
            let names = |entries: &[store::copies::PreviewEntry]| {
                entries
                    .iter()
                    .map(|e| e.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let dry = RoutingDryRun {
                users: preview.users,
                groups: preview.groups,
                version,
                moves: preview
                    .children
                    .iter()
                    .map(|c| MoveRow {
                        child: c.child.clone(),
                        users_entering: c.users_entering,
                        users_leaving: c.users_leaving,
                        groups_entering: c.groups_entering,
                        groups_leaving: c.groups_leaving,
                        entering: names(&c.sample_entering),
                        leaving: names(&c.sample_leaving),
                    })
                    .collect(),
            };
            routing_page(
                &req,
                Some(f.rules),
                Some(dry),
                String::new(),
                FormErrors::none(),
            )
            .await
        }
        Ok(RoutingOutcome::Stored(change)) => see_other(format!(
            "{CONSOLE_PATH}/t/{}/jobs/{}",
            ctx.tenant().slug(),
            change.job
        )),
        Err(e) => {
            let mut errors = FormErrors::from_error(e, &["rules"])?;
            if errors.status() == StatusCode::PRECONDITION_FAILED {
                errors = FormErrors::on(
                    "",
                    "the rules changed since this preview; nothing was saved. Preview again.",
                )
                .with_status(StatusCode::PRECONDITION_FAILED);
            } else if errors.get("rules").is_none() {
                let message = errors.get("").unwrap_or_default().to_owned();
                let status = errors.status();
                errors = FormErrors::on("rules", message).with_status(status);
            }
            routing_page(&req, Some(f.rules), None, String::new(), errors).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct KindForm {
    #[serde(default)]
    kind: String,
}

/// `POST /console/t/{tenant}/kind`: make a tenant super or standard.
pub(crate) async fn set_kind(req: HttpRequest, body: web::Bytes) -> Page {
    let caller = operator(&req)?;
    let ctx = scoped::<Read>(&req).await?;
    let f: KindForm = form(&body)?;
    let kind = match f.kind.as_str() {
        "super" => TenantKind::Super,
        "standard" => TenantKind::Standard,
        _ => {
            let errors = FormErrors::on("kind", "choose standard or super");
            return routing_page(&req, None, None, String::new(), errors).await;
        }
    };
    let state = auth::state(&req)?;
    match service::set_tenant_kind(
        &state.store.admin(),
        &caller.actor(),
        ctx.tenant().slug(),
        kind,
    )
    .await
    {
        Ok(_) => {
            // Cached token verifications carry the tenant's kind and link.
            state.auth_changed();
            see_other(format!("{CONSOLE_PATH}/t/{}/routing", ctx.tenant().slug()))
        }
        Err(e) => {
            let errors = FormErrors::from_error(e, &["kind"])?;
            routing_page(&req, None, None, String::new(), errors).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct LinkForm {
    #[serde(default)]
    child: String,
    #[serde(default)]
    on_unroute: String,
}

/// `POST /console/t/{tenant}/children`: link a child tenant.
pub(crate) async fn link(req: HttpRequest, body: web::Bytes) -> Page {
    let caller = operator(&req)?;
    let ctx = scoped::<Read>(&req).await?;
    let f: LinkForm = form(&body)?;
    let on_unroute = match f.on_unroute.as_str() {
        "" | "deactivate" => OnUnroute::Deactivate,
        "delete" => OnUnroute::Delete,
        _ => {
            let errors = FormErrors::on("on_unroute", "choose deactivate or delete");
            return routing_page(&req, None, None, f.child, errors).await;
        }
    };
    let state = auth::state(&req)?;
    match service::link_child(
        &state.store.admin(),
        &caller.actor(),
        ctx.tenant().slug(),
        f.child.trim(),
        on_unroute,
    )
    .await
    {
        Ok(_) => {
            // Cached token verifications carry the tenant's kind and link.
            state.auth_changed();
            see_other(format!("{CONSOLE_PATH}/t/{}/routing", ctx.tenant().slug()))
        }
        Err(e) => {
            let errors = match FormErrors::from_error(e, &["child"]) {
                Ok(errors) => errors,
                // An unknown child is a mistake in the form, not a page
                // that does not exist.
                Err(e) if e.0.status_code() == StatusCode::NOT_FOUND => {
                    FormErrors::on("child", e.0.public_message())
                }
                Err(e) => return Err(e),
            };
            let errors = if errors.get("child").is_none() {
                let message = errors.get("").unwrap_or_default().to_owned();
                FormErrors::on("child", message)
            } else {
                errors
            };
            routing_page(&req, None, None, f.child, errors).await
        }
    }
}

#[derive(Template)]
#[template(path = "console/unlink.html")]
struct UnlinkPage {
    layout: Layout,
    child: String,
    errors: FormErrors,
}

/// `GET /console/t/{tenant}/children/{child}/unlink`: the confirmation.
pub(crate) async fn confirm_unlink(req: HttpRequest) -> Page {
    operator(&req)?;
    let ctx = scoped::<Read>(&req).await?;
    ok(&UnlinkPage {
        layout: Layout::new(&req, "Unlink child", "routing", Some(ctx.tenant()))?,
        child: param(&req, "child"),
        errors: FormErrors::none(),
    })
}

#[derive(Debug, Default, Deserialize)]
struct UnlinkForm {
    #[serde(default)]
    copies: String,
}

/// `POST /console/t/{tenant}/children/{child}/unlink`.
pub(crate) async fn unlink(req: HttpRequest, body: web::Bytes) -> Page {
    let caller = operator(&req)?;
    let ctx = scoped::<Read>(&req).await?;
    let f: UnlinkForm = form(&body)?;
    let child = param(&req, "child");
    let copies = match f.copies.as_str() {
        "keep" => CopiesOnUnlink::Keep,
        "remove" => CopiesOnUnlink::Remove,
        _ => {
            let page = UnlinkPage {
                layout: Layout::new(&req, "Unlink child", "routing", Some(ctx.tenant()))?,
                child,
                errors: FormErrors::on("copies", "choose what becomes of the copies"),
            };
            return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let state = auth::state(&req)?;
    service::unlink_child(
        &state.store.admin(),
        &caller.actor(),
        ctx.tenant().slug(),
        &child,
        Some(copies),
    )
    .await?;
    state.auth_changed();
    see_other(format!("{CONSOLE_PATH}/t/{}/routing", ctx.tenant().slug()))
}

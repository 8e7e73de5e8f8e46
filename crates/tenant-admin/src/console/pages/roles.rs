//! Roles: the tenant's roles, default role, group mappings and mode. Every
//! change is first previewed with the service's dry run (who would change,
//! from what to what); saving it sends the version the preview was made
//! against, so a policy changed meanwhile is previewed again rather than
//! overwritten. Saving queues a recompute job, whose progress has a page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use askama::Template;
use roles::{GroupMatch, Mapping, Mode, PolicyEdit, Role};
use serde::{Deserialize, Serialize};
use store::{JobStatus, StoredPolicy};

use super::{Page, form, param, scoped, when, when_opt};
use crate::auth::{Read, Write};
use crate::console::pages::directory::LockRow;
use crate::console::render::{FormErrors, Layout, html, ok, see_other, wants_fragment};
use crate::service::{self, ChangeOptions, NoOp, PolicyOutcome, PolicyRequest};

/// A proposed change, as every roles form posts it (and the preview's
/// save form posts it back, with the version it was previewed against).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(crate) struct ChangeForm {
    /// `set_default`, `set_mode`, `add_role`, `remove_role`, `add_mapping`
    /// or `remove_mapping`.
    #[serde(default)]
    op: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    match_by: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    mapping: String,
    #[serde(default)]
    version: Option<u64>,
}

impl ChangeForm {
    /// The service request, or an error next to the offending field.
    fn request(&self) -> Result<PolicyRequest, FormErrors> {
        let role = self.role.trim().to_owned();
        Ok(match self.op.as_str() {
            "set_default" => {
                PolicyRequest::Edit(PolicyEdit::SetDefault((!role.is_empty()).then_some(role)))
            }
            "set_mode" => PolicyRequest::Edit(PolicyEdit::SetMode(match self.mode.as_str() {
                "single" => Mode::Single,
                "multi" => Mode::Multi,
                _ => return Err(FormErrors::on("mode", "choose single or multi")),
            })),
            "add_role" => {
                if role.is_empty() {
                    return Err(FormErrors::on("role", "enter the role's name"));
                }
                PolicyRequest::Edit(PolicyEdit::AddRole(Role {
                    name: role,
                    description: self.description.trim().to_owned(),
                }))
            }
            "remove_role" => PolicyRequest::Edit(PolicyEdit::RemoveRole(role)),
            "add_mapping" => {
                let group = self.group.trim().to_owned();
                if group.is_empty() {
                    return Err(FormErrors::on("group", "enter the group to map"));
                }
                let group = match self.match_by.as_str() {
                    "" | "displayName" => GroupMatch::DisplayName(group),
                    "externalId" => GroupMatch::ExternalId(group),
                    "id" => GroupMatch::Id(group),
                    _ => {
                        return Err(FormErrors::on(
                            "match_by",
                            "choose what identifies the group",
                        ));
                    }
                };
                let priority = match self.priority.trim() {
                    "" => 0,
                    p => p.parse::<i32>().map_err(|_| {
                        FormErrors::on("priority", "the priority is a whole number; higher wins")
                    })?,
                };
                if role.is_empty() {
                    return Err(FormErrors::on("role", "choose the role the group grants"));
                }
                PolicyRequest::Edit(PolicyEdit::AddMapping(Mapping {
                    group,
                    role,
                    priority,
                }))
            }
            "remove_mapping" => PolicyRequest::RemoveMapping(self.mapping.clone()),
            _ => return Err(FormErrors::on("", "unknown change; reload the page")),
        })
    }

    /// What the change is, in words.
    pub(crate) fn describe(&self) -> String {
        match self.op.as_str() {
            "set_default" if self.role.trim().is_empty() => "Clear the default role".to_owned(),
            "set_default" => format!("Make “{}” the default role", self.role.trim()),
            "set_mode" => format!("Switch to {} mode", self.mode),
            "add_role" => format!("Add the role “{}”", self.role.trim()),
            "remove_role" => format!("Remove the role “{}”", self.role.trim()),
            "add_mapping" => format!(
                "Map the group with {} “{}” to “{}” (priority {})",
                if self.match_by.is_empty() {
                    "displayName"
                } else {
                    &self.match_by
                },
                self.group.trim(),
                self.role.trim(),
                if self.priority.trim().is_empty() {
                    "0"
                } else {
                    self.priority.trim()
                }
            ),
            "remove_mapping" => "Remove a group mapping".to_owned(),
            _ => "Change the role policy".to_owned(),
        }
    }

    /// Every field as hidden inputs for the save form.
    pub(crate) fn hidden(&self) -> Vec<(&'static str, String)> {
        vec![
            ("op", self.op.clone()),
            ("role", self.role.clone()),
            ("description", self.description.clone()),
            ("mode", self.mode.clone()),
            ("match_by", self.match_by.clone()),
            ("group", self.group.clone()),
            ("priority", self.priority.clone()),
            ("mapping", self.mapping.clone()),
        ]
    }
}

/// One user the preview would change.
pub(crate) struct ChangeRow {
    pub(crate) user_id: String,
    pub(crate) user_name: String,
    pub(crate) before: String,
    pub(crate) after: String,
}

fn role_list(e: &Option<roles::Effective>) -> String {
    match e {
        None => "none yet".to_owned(),
        Some(e) if e.roles.is_empty() => "no role".to_owned(),
        Some(e) => e
            .roles
            .iter()
            .map(|r| format!("{} ({})", r.role, r.reason))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A dry run's result.
pub(crate) struct Preview {
    pub(crate) change: ChangeForm,
    pub(crate) version: u64,
    pub(crate) users: u64,
    pub(crate) changed: u64,
    pub(crate) sample: Vec<ChangeRow>,
}

/// A mapping as listed.
pub(crate) struct MappingRow {
    pub(crate) id: String,
    pub(crate) by: &'static str,
    pub(crate) group: String,
    pub(crate) role: String,
    pub(crate) priority: i32,
}

#[derive(Template)]
#[template(path = "console/roles.html")]
struct RolesPage {
    layout: Layout,
    policy: StoredPolicy,
    mappings: Vec<MappingRow>,
    jobs: Vec<JobRow>,
    preview: Option<Preview>,
    change: ChangeForm,
    errors: FormErrors,
}

impl RolesPage {
    fn mode(&self) -> &'static str {
        match self.policy.policy.mode {
            Mode::Single => "single",
            Mode::Multi => "multi",
        }
    }

    fn is_default(&self, role: &str) -> bool {
        self.policy.policy.default_role.as_deref() == Some(role)
    }
}

#[derive(Template)]
#[template(path = "console/roles.html", block = "preview")]
struct PreviewFragment {
    layout: Layout,
    preview: Option<Preview>,
    errors: FormErrors,
}

async fn roles_page(
    req: &HttpRequest,
    preview: Option<Preview>,
    change: ChangeForm,
    errors: FormErrors,
) -> Page {
    let ctx = scoped::<Read>(req).await?;
    let layout = Layout::new(req, "Roles", "roles", Some(ctx.tenant()))?;
    let status = errors.status();
    if wants_fragment(req, "preview") {
        return Ok(html(
            status,
            &PreviewFragment {
                layout,
                preview,
                errors,
            },
        ));
    }
    let policy = service::get_policy(&ctx).await?;
    let mappings = policy
        .policy
        .mappings
        .iter()
        .zip(&policy.mapping_ids)
        .map(|(m, id)| MappingRow {
            id: id.clone(),
            by: m.group.attribute(),
            group: m.group.value().to_owned(),
            role: m.role.clone(),
            priority: m.priority,
        })
        .collect();
    let jobs = service::list_role_jobs(&ctx, Some(5))
        .await?
        .iter()
        .map(JobRow::of)
        .collect();
    let page = RolesPage {
        layout,
        policy,
        mappings,
        jobs,
        preview,
        change,
        errors,
    };
    Ok(html(status, &page))
}

/// `GET /console/t/{tenant}/roles`.
pub(crate) async fn page(req: HttpRequest) -> Page {
    roles_page(&req, None, ChangeForm::default(), FormErrors::none()).await
}

/// `POST /console/t/{tenant}/roles/preview`: the dry run of one change.
pub(crate) async fn preview(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let change: ChangeForm = form(&body)?;
    let request = match change.request() {
        Ok(r) => r,
        Err(errors) => return roles_page(&req, None, change, errors).await,
    };
    let options = ChangeOptions {
        expected: None,
        dry_run: true,
        no_op: NoOp::Store,
    };
    match service::change_policy(&ctx, &request, options).await {
        Ok(PolicyOutcome::DryRun { current, preview }) => {
            let preview = Preview {
                version: current.version,
                users: preview.users,
                changed: preview.changed,
                sample: preview
                    .sample
                    .iter()
                    .map(|c| ChangeRow {
                        user_id: c.user_id.clone(),
                        user_name: c.user_name.clone(),
                        before: role_list(&c.before),
                        after: role_list(&c.after),
                    })
                    .collect(),
                change: change.clone(),
            };
            roles_page(&req, Some(preview), change, FormErrors::none()).await
        }
        Ok(_) => Err(crate::error::AdminError::Internal("a dry run stored a change".into()).into()),
        Err(e) => {
            let errors = FormErrors::from_error(e, &["role", "group", "priority", "mode"])?;
            roles_page(&req, None, change, errors).await
        }
    }
}

/// `POST /console/t/{tenant}/roles/apply`: saves a previewed change, if
/// the policy is still the version it was previewed against.
pub(crate) async fn apply(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let change: ChangeForm = form(&body)?;
    let request = match change.request() {
        Ok(r) => r,
        Err(errors) => return roles_page(&req, None, change, errors).await,
    };
    let Some(version) = change.version else {
        let errors = FormErrors::on("", "preview the change before saving it");
        return roles_page(&req, None, change, errors).await;
    };
    let options = ChangeOptions {
        expected: Some(version),
        dry_run: false,
        no_op: NoOp::Store,
    };
    match service::change_policy(&ctx, &request, options).await {
        Ok(PolicyOutcome::Stored(stored)) => see_other(format!(
            "{}/t/{}/roles/jobs/{}",
            crate::console::CONSOLE_PATH,
            ctx.tenant().slug(),
            stored.job
        )),
        Ok(_) => Err(crate::error::AdminError::Internal("a change was not stored".into()).into()),
        Err(e) => {
            let mut errors = FormErrors::from_error(e, &["role", "group", "priority", "mode"])?;
            if errors.status() == StatusCode::PRECONDITION_FAILED {
                errors = FormErrors::on(
                    "",
                    "the role policy changed since this preview; nothing was saved. Preview the change again.",
                )
                .with_status(StatusCode::PRECONDITION_FAILED);
            }
            roles_page(&req, None, change, errors).await
        }
    }
}

/// A recompute job as shown.
pub(crate) struct JobRow {
    pub(crate) id: String,
    pub(crate) status: &'static str,
    pub(crate) running: bool,
    pub(crate) version: u64,
    pub(crate) total: u64,
    pub(crate) processed: u64,
    pub(crate) changed: u64,
    pub(crate) error: Option<String>,
    pub(crate) created: String,
    pub(crate) finished: String,
}

impl JobRow {
    fn of(j: &store::RoleJob) -> JobRow {
        JobRow {
            id: j.id.clone(),
            status: j.status.as_str(),
            running: matches!(j.status, JobStatus::Queued | JobStatus::Running),
            version: j.policy_version,
            total: j.total,
            processed: j.processed,
            changed: j.changed,
            error: j.error.clone(),
            created: when(&j.created_at),
            finished: when_opt(&j.finished_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/job.html")]
struct JobPage {
    layout: Layout,
    job: JobRow,
}

#[derive(Template)]
#[template(path = "console/job.html", block = "progress")]
struct JobProgress {
    layout: Layout,
    job: JobRow,
}

/// `GET /console/t/{tenant}/roles/jobs/{id}`: progress, refreshed by htmx
/// while the job runs.
pub(crate) async fn job(req: HttpRequest) -> Page {
    let ctx = scoped::<Read>(&req).await?;
    let job = JobRow::of(&service::get_role_job(&ctx, &param(&req, "id")).await?);
    let layout = Layout::new(&req, "Recompute job", "roles", Some(ctx.tenant()))?;
    if wants_fragment(&req, "progress") {
        return ok(&JobProgress { layout, job });
    }
    ok(&JobPage { layout, job })
}

#[derive(Template)]
#[template(path = "console/locks.html")]
struct LocksPage {
    layout: Layout,
    locks: Vec<(String, LockRow)>,
}

/// `GET /console/t/{tenant}/locks`: every locked user.
pub(crate) async fn locks(req: HttpRequest) -> Page {
    let ctx = scoped::<Read>(&req).await?;
    let locks = service::list_locks(&ctx)
        .await?
        .iter()
        .map(|l| (l.user_id.clone(), LockRow::of(l)))
        .collect();
    ok(&LocksPage {
        layout: Layout::new(&req, "Role-locks", "locks", Some(ctx.tenant()))?,
        locks,
    })
}

//! A target's attribute mapping: edited as the JSON the API takes,
//! previewed on real users (what the application receives now and what it
//! would receive) before it is saved; saving may re-send the users whose
//! document changes, as a job with progress.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use askama::Template;
use serde::Deserialize;
use serde_json::Value;

use super::{Page, form, param, scoped};
use crate::auth::{Read, Write};
use crate::console::CONSOLE_PATH;
use crate::console::render::{FormErrors, Layout, html, see_other};
use crate::service::delivery;

/// Users the page previews.
const PREVIEW_USERS: u64 = 5;

/// One previewed user.
pub(crate) struct PreviewRow {
    pub(crate) id: String,
    pub(crate) before: String,
    pub(crate) after: String,
    pub(crate) changed: bool,
}

#[derive(Template)]
#[template(path = "console/mapping.html")]
struct MappingPage {
    layout: Layout,
    target_id: String,
    target_name: String,
    mapping: String,
    version: u64,
    preview: Option<Vec<PreviewRow>>,
    resend: bool,
    errors: FormErrors,
}

async fn mapping_page(
    req: &HttpRequest,
    text: Option<String>,
    preview: Option<Vec<PreviewRow>>,
    resend: bool,
    errors: FormErrors,
) -> Page {
    let ctx = scoped::<Read>(req).await?;
    let target = delivery::get_target(&ctx, &param(req, "id")).await?;
    let current = match &target.mapping {
        Some(spec) => serde_json::to_string_pretty(spec).unwrap_or_else(|_| "null".into()),
        None => "null".to_owned(),
    };
    let status = errors.status();
    let page = MappingPage {
        layout: Layout::new(req, "Attribute mapping", "delivery", Some(ctx.tenant()))?,
        target_id: target.id.to_string(),
        target_name: target.name.clone(),
        mapping: text.unwrap_or(current),
        version: target.mapping_version,
        preview,
        resend,
        errors,
    };
    Ok(html(status, &page))
}

/// `GET /console/t/{tenant}/delivery/{id}/mapping`.
pub(crate) async fn page(req: HttpRequest) -> Page {
    mapping_page(&req, None, None, false, FormErrors::none()).await
}

#[derive(Debug, Default, Deserialize)]
struct MappingForm {
    #[serde(default)]
    mapping: String,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    resend: Option<String>,
    /// `preview` or `save`.
    #[serde(default)]
    action: String,
}

/// `POST /console/t/{tenant}/delivery/{id}/mapping`: preview or save.
pub(crate) async fn change(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let id = param(&req, "id");
    let f: MappingForm = form(&body)?;
    let resend = f.resend.is_some();
    let text = f.mapping.trim();
    let parsed: Result<Value, _> = if text.is_empty() {
        Ok(Value::Null)
    } else {
        serde_json::from_str(text)
    };
    let spec = match parsed
        .map_err(|e| crate::service::ServiceError::Invalid(format!("the mapping is not JSON: {e}")))
        .and_then(|v| delivery::mapping_spec(Some(&v)))
    {
        Ok(spec) => spec,
        Err(e) => {
            let errors = FormErrors::from_error(e, &[])?.renamed(&[("", "mapping")]);
            return mapping_page(&req, Some(f.mapping), None, resend, errors).await;
        }
    };
    if f.action != "save" {
        let rows = delivery::preview_mapping(&ctx, &id, spec, None, PREVIEW_USERS).await?;
        let preview = rows
            .into_iter()
            .map(|p| PreviewRow {
                changed: p.before != p.after,
                id: p.id,
                before: serde_json::to_string_pretty(&p.before).unwrap_or_default(),
                after: serde_json::to_string_pretty(&p.after).unwrap_or_default(),
            })
            .collect();
        return mapping_page(
            &req,
            Some(f.mapping),
            Some(preview),
            resend,
            FormErrors::none(),
        )
        .await;
    }
    match delivery::set_mapping(&ctx, &id, spec, f.version, resend).await {
        Ok((_, Some(job))) => see_other(format!(
            "{CONSOLE_PATH}/t/{}/jobs/{job}",
            ctx.tenant().slug()
        )),
        Ok((target, None)) => see_other(format!(
            "{CONSOLE_PATH}/t/{}/delivery/{}",
            ctx.tenant().slug(),
            target.id
        )),
        Err(e) => {
            let mut errors = FormErrors::from_error(e, &[])?;
            if errors.status() == StatusCode::PRECONDITION_FAILED {
                errors = FormErrors::on(
                    "",
                    "the mapping changed since you loaded it; nothing was saved. Review it again.",
                )
                .with_status(StatusCode::PRECONDITION_FAILED);
            } else {
                errors = errors.renamed(&[("", "mapping")]);
            }
            mapping_page(&req, Some(f.mapping), None, resend, errors).await
        }
    }
}

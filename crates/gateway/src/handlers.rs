//! HTTP handlers: extract, call [`crate::ops`], render. Each write is
//! audited (metric + provisioning log) whatever its outcome.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use futures_util::future::BoxFuture;
use scim::AttrPath;
use scim::discovery::{
    ServiceProviderConfig, resource_type_resource, resource_types_document, schema_resource,
    schemas_document,
};
use scim::projection::Projection;
use scim::schemas::{Registry, SCIMGATE_USER};
use serde_json::Value;
use serde_json::value::RawValue;
use store::{Page, Resource, UserExtras};

use crate::auth::{AnyScope, Authorized, ScimRead, ScimWrite};
use crate::body::ScimJson;
use crate::error::ApiError;
use crate::observe::Unmatched;
use crate::ops::{self, IfMatch};
use crate::provlog::Audit;
use crate::query::{self, ListRequest, Params};
use crate::render::{self, Kind};

type Reply = Result<HttpResponse, ApiError>;

/// The resource's path segment (`{id}`, `{name}` or `{urn}`), read by name:
/// `web::Path<String>` refuses the `/tenants/{slug}/...` mount, which has
/// two segments.
pub(crate) struct PathId(String);

impl actix_web::FromRequest for PathId {
    type Error = ApiError;
    type Future = std::future::Ready<Result<PathId, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let info = req.match_info();
        let value = ["id", "name", "urn"]
            .iter()
            .find_map(|k| info.get(k))
            .map(str::to_owned)
            .ok_or_else(|| ApiError::NoRoute(clip(req.path())));
        std::future::ready(value.map(PathId))
    }
}

fn params(req: &HttpRequest) -> Params {
    Params::parse(req.query_string())
}

fn if_match(req: &HttpRequest) -> IfMatch {
    IfMatch::parse(
        req.headers()
            .get(header::IF_MATCH)
            // A header that is not visible ASCII cannot name our tags: it
            // becomes one that matches nothing (412), not "no header".
            .map(|v| v.to_str().unwrap_or("\u{0}")),
    )
}

fn members_path() -> AttrPath {
    AttrPath::new("members")
}

fn groups_path() -> AttrPath {
    AttrPath::new("groups")
}

/// Counts a read in `scimgate_scim_operations_total`.
fn count_read<R>(auth: &Authorized<R>, kind: Kind, operation: &str, result: &Reply) {
    let outcome = match result {
        Ok(_) => "success",
        Err(_) => "failure",
    };
    auth.shared
        .metrics
        .operations
        .with_label_values(&[
            &auth.shared.tenant_label(auth.tenant.slug()),
            kind.name(),
            operation,
            outcome,
        ])
        .inc();
}

/// What a rendering of users under `projection` needs besides the users.
fn user_extras(projection: &Projection) -> UserExtras {
    let schema = Kind::User.schema();
    UserExtras {
        groups: projection.wants(&groups_path(), schema),
        roles: projection.wants_schema(SCIMGATE_USER, schema),
    }
}

/// Renders users with `groups` and the effective roles of the scimgate
/// extension when the projection shows them: from `page` when the list
/// read them along, otherwise in one query for the whole page. A user
/// without stored effective roles gets no extension.
async fn render_users<R>(
    auth: &Authorized<R>,
    users: Vec<Resource>,
    projection: &Projection,
    page: Option<&mut Page>,
) -> Result<Vec<Value>, ApiError> {
    let wanted = user_extras(projection);
    let (read_groups, read_roles) = match page {
        Some(page) => (page.groups.take(), page.roles.take()),
        None => (None, None),
    };
    // What the page did not bring along (or no page at all).
    let missing = UserExtras {
        groups: wanted.groups && read_groups.is_none(),
        roles: wanted.roles && read_roles.is_none(),
    };
    let (fetched_groups, fetched_roles) = if users.is_empty() {
        Default::default()
    } else {
        let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
        auth.store.user_extras(&ids, missing).await?
    };
    let mut groups = wanted.groups.then(|| read_groups.unwrap_or(fetched_groups));
    let effective = match wanted.roles {
        true => read_roles.unwrap_or(fetched_roles),
        false => HashMap::new(),
    };
    let schema = Kind::User.schema();
    Ok(users
        .into_iter()
        .map(|u| {
            let refs = groups.as_mut().map(|g| g.remove(&u.id).unwrap_or_default());
            let roles = effective.get(&u.id);
            projection.apply(
                store::render::user(u, refs.as_deref(), roles, &auth.base_url),
                schema,
            )
        })
        .collect())
}

/// Renders a group with whatever members were loaded.
fn render_group<R>(auth: &Authorized<R>, g: Resource, projection: &Projection) -> Value {
    projection.apply(
        store::render::group(g, &auth.base_url),
        Kind::Group.schema(),
    )
}

/// A group response's body. Under the default projection the members come
/// from the database as JSON text, spliced in without being parsed and
/// re-encoded (for a large group they are most of the response);
/// otherwise they are read only if the projection keeps some of them, and
/// projected like any attribute. `None` when `at_most` is given and the
/// group has more members (under the default projection its size is read
/// with its members, in the same statement).
async fn group_body<R>(
    auth: &Authorized<R>,
    mut group: Resource,
    projection: &Projection,
    at_most: Option<u64>,
) -> Result<Option<Vec<u8>>, ApiError> {
    if group.members.is_none() && projection.is_default() {
        let Some(text) = auth
            .store
            .group_members_json(
                &group.id,
                &render::location_prefix(&auth.base_url, Kind::User),
                &render::location_prefix(&auth.base_url, Kind::Group),
                at_most,
            )
            .await?
        else {
            return Ok(None);
        };
        let members = RawValue::from_string(text).map_err(|e| {
            ApiError::Store(store::StoreError::Internal(format!(
                "members of group {}: {e}",
                group.id
            )))
        })?;
        let body = render_group(auth, group, projection);
        return Ok(Some(render::encode_with_members(&body, &members)));
    }
    if let Some(n) = at_most
        && auth.store.group_has_more_members_than(&group.id, n).await?
    {
        return Ok(None);
    }
    if group.members.is_none() && projection.wants(&members_path(), Kind::Group.schema()) {
        group.members = Some(auth.store.group_members(&group.id).await?);
    }
    Ok(Some(render::encode(&render_group(auth, group, projection))))
}

fn list_reply(page: &Page, request: &ListRequest, resources: Vec<Value>) -> HttpResponse {
    render::json_response(
        StatusCode::OK,
        &render::list(page.total, request.query.start_index, resources),
    )
}

// ---------------------------------------------------------------- Users

async fn user_list<R>(auth: &Authorized<R>, mut request: ListRequest) -> Reply {
    request.query.user_extras = user_extras(&request.projection);
    let mut page = ops::list_users(&auth.store, &request.query).await?;
    let users = std::mem::take(&mut page.resources);
    let resources = render_users(auth, users, &request.projection, Some(&mut page)).await?;
    Ok(list_reply(&page, &request, resources))
}

/// GET /Users
pub(crate) async fn list_users(auth: Authorized<ScimRead>, req: HttpRequest) -> Reply {
    let result = async {
        let request = query::from_params(&params(&req), Kind::User.schema(), &auth.shared.config)?;
        user_list(&auth, request).await
    }
    .await;
    count_read(&auth, Kind::User, "list", &result);
    result
}

/// POST /Users/.search
pub(crate) async fn search_users(
    auth: Authorized<ScimRead>,
    body: Result<ScimJson, ApiError>,
) -> Reply {
    let result = async {
        let request = query::from_search(&body?.0, Kind::User.schema(), &auth.shared.config)?;
        user_list(&auth, request).await
    }
    .await;
    count_read(&auth, Kind::User, "search", &result);
    result
}

/// GET /Users/{id}
pub(crate) async fn get_user(
    auth: Authorized<ScimRead>,
    PathId(id): PathId,
    req: HttpRequest,
) -> Reply {
    let result = async {
        let projection = params(&req).projection()?;
        let user = ops::get_user(&auth.store, &id).await?;
        if let Some(h) = req.headers().get(header::IF_NONE_MATCH)
            && !scim::meta::if_none_match(h.to_str().unwrap_or(""), user.version)
        {
            return Ok(render::not_modified(user.version));
        }
        let version = user.version;
        let mut body = render_users(&auth, vec![user], &projection, None).await?;
        let body = body.pop().unwrap_or(Value::Null);
        Ok(render::resource_response(
            StatusCode::OK,
            &body,
            version,
            None,
        ))
    }
    .await;
    count_read(&auth, Kind::User, "get", &result);
    result
}

/// POST /Users
pub(crate) async fn create_user(
    auth: Authorized<ScimWrite>,
    body: Result<ScimJson, ApiError>,
    req: HttpRequest,
) -> Reply {
    let mut audit = Audit::start("POST", Kind::User, "create", None);
    let result = async {
        let body = body?.0;
        audit.identify(&body);
        let projection = params(&req).projection()?;
        let mut user = ops::create_user(&auth.store, &body).await?;
        audit.id(&user.id);
        audit.routed(std::mem::take(&mut user.routed));
        let location = render::resource_location(&auth.base_url, Kind::User, &user.id);
        let version = user.version;
        let mut rendered = render_users(&auth, vec![user], &projection, None).await?;
        let rendered = rendered.pop().unwrap_or(Value::Null);
        Ok(render::resource_response(
            StatusCode::CREATED,
            &rendered,
            version,
            Some(location),
        ))
    }
    .await;
    audit.finish(&auth, &result);
    result
}

/// PUT /Users/{id}
pub(crate) async fn replace_user(
    auth: Authorized<ScimWrite>,
    PathId(id): PathId,
    body: Result<ScimJson, ApiError>,
    req: HttpRequest,
) -> Reply {
    let mut audit = Audit::start("PUT", Kind::User, "replace", Some(&id));
    let result = async {
        let body = body?.0;
        audit.identify(&body);
        let projection = params(&req).projection()?;
        let mut user = ops::replace_user(&auth.store, &id, &body, &if_match(&req)).await?;
        audit.routed(std::mem::take(&mut user.routed));
        let version = user.version;
        let mut rendered = render_users(&auth, vec![user], &projection, None).await?;
        let rendered = rendered.pop().unwrap_or(Value::Null);
        Ok(render::resource_response(
            StatusCode::OK,
            &rendered,
            version,
            None,
        ))
    }
    .await;
    audit.finish(&auth, &result);
    result
}

/// PATCH /Users/{id}
pub(crate) async fn patch_user(
    auth: Authorized<ScimWrite>,
    PathId(id): PathId,
    body: Result<ScimJson, ApiError>,
    req: HttpRequest,
) -> Reply {
    let mut audit = Audit::start("PATCH", Kind::User, "patch", Some(&id));
    let result = async {
        let body = body?.0;
        let projection = params(&req).projection()?;
        let mut user = ops::patch_user(&auth.store, &id, &body, &if_match(&req)).await?;
        audit.routed(std::mem::take(&mut user.routed));
        audit.identify(&user.document);
        let version = user.version;
        let mut rendered = render_users(&auth, vec![user], &projection, None).await?;
        let rendered = rendered.pop().unwrap_or(Value::Null);
        Ok(render::resource_response(
            StatusCode::OK,
            &rendered,
            version,
            None,
        ))
    }
    .await;
    audit.finish(&auth, &result);
    result
}

/// DELETE /Users/{id}
pub(crate) async fn delete_user(
    auth: Authorized<ScimWrite>,
    PathId(id): PathId,
    req: HttpRequest,
) -> Reply {
    let mut audit = Audit::start("DELETE", Kind::User, "delete", Some(&id));
    let result = async {
        audit.routed(ops::delete_user(&auth.store, &id, &if_match(&req)).await?);
        Ok(HttpResponse::NoContent().finish())
    }
    .await;
    audit.finish(&auth, &result);
    result
}

// ---------------------------------------------------------------- Groups

async fn group_list<R>(auth: &Authorized<R>, mut request: ListRequest) -> Reply {
    request.query.with_members = request
        .projection
        .wants(&members_path(), Kind::Group.schema());
    let mut page = ops::list_groups(&auth.store, &request.query).await?;
    let resources = std::mem::take(&mut page.resources)
        .into_iter()
        .map(|g| render_group(auth, g, &request.projection))
        .collect();
    Ok(list_reply(&page, &request, resources))
}

/// GET /Groups
pub(crate) async fn list_groups(auth: Authorized<ScimRead>, req: HttpRequest) -> Reply {
    let result = async {
        let request = query::from_params(&params(&req), Kind::Group.schema(), &auth.shared.config)?;
        group_list(&auth, request).await
    }
    .await;
    count_read(&auth, Kind::Group, "list", &result);
    result
}

/// POST /Groups/.search
pub(crate) async fn search_groups(
    auth: Authorized<ScimRead>,
    body: Result<ScimJson, ApiError>,
) -> Reply {
    let result = async {
        let request = query::from_search(&body?.0, Kind::Group.schema(), &auth.shared.config)?;
        group_list(&auth, request).await
    }
    .await;
    count_read(&auth, Kind::Group, "search", &result);
    result
}

/// GET /Groups/{id}
pub(crate) async fn get_group(
    auth: Authorized<ScimRead>,
    PathId(id): PathId,
    req: HttpRequest,
) -> Reply {
    let result = async {
        let projection = params(&req).projection()?;
        let group = ops::get_group(&auth.store, &id, false).await?;
        if let Some(h) = req.headers().get(header::IF_NONE_MATCH)
            && !scim::meta::if_none_match(h.to_str().unwrap_or(""), group.version)
        {
            return Ok(render::not_modified(group.version));
        }
        let version = group.version;
        let body = group_body(&auth, group, &projection, None)
            .await?
            .ok_or_else(|| {
                ApiError::Internal("a group body without a bound was withheld".into())
            })?;
        Ok(render::encoded_resource_response(
            StatusCode::OK,
            body,
            version,
            None,
        ))
    }
    .await;
    count_read(&auth, Kind::Group, "get", &result);
    result
}

/// POST /Groups
pub(crate) async fn create_group(
    auth: Authorized<ScimWrite>,
    body: Result<ScimJson, ApiError>,
    req: HttpRequest,
) -> Reply {
    let mut audit = Audit::start("POST", Kind::Group, "create", None);
    let result = async {
        let body = body?.0;
        audit.identify(&body);
        let projection = params(&req).projection()?;
        let (mut group, members) = ops::create_group(&auth.store, &body).await?;
        audit.id(&group.id);
        audit.routed(std::mem::take(&mut group.routed));
        group.members.get_or_insert(members);
        let location = render::resource_location(&auth.base_url, Kind::Group, &group.id);
        let version = group.version;
        let rendered = render_group(&auth, group, &projection);
        Ok(render::resource_response(
            StatusCode::CREATED,
            &rendered,
            version,
            Some(location),
        ))
    }
    .await;
    audit.finish(&auth, &result);
    result
}

/// PUT /Groups/{id}
pub(crate) async fn replace_group(
    auth: Authorized<ScimWrite>,
    PathId(id): PathId,
    body: Result<ScimJson, ApiError>,
    req: HttpRequest,
) -> Reply {
    let mut audit = Audit::start("PUT", Kind::Group, "replace", Some(&id));
    let result = async {
        let body = body?.0;
        audit.identify(&body);
        let projection = params(&req).projection()?;
        let (mut group, members) =
            ops::replace_group(&auth.store, &id, &body, &if_match(&req)).await?;
        audit.routed(std::mem::take(&mut group.routed));
        group.members.get_or_insert(members);
        let version = group.version;
        let rendered = render_group(&auth, group, &projection);
        Ok(render::resource_response(
            StatusCode::OK,
            &rendered,
            version,
            None,
        ))
    }
    .await;
    audit.finish(&auth, &result);
    result
}

/// PATCH /Groups/{id}. RFC 7644 §3.5.2: a 200 response carries "the entire
/// resource ... subject to the `attributes` query parameter", so `members`
/// are returned unless the client excludes them; 204 is the other answer
/// it allows. Which one is [`answers_no_content`]'s choice. The write
/// itself stays O(change); only a 200 reads the member set.
pub(crate) async fn patch_group(
    auth: Authorized<ScimWrite>,
    PathId(id): PathId,
    body: Result<ScimJson, ApiError>,
    req: HttpRequest,
) -> Reply {
    let mut audit = Audit::start("PATCH", Kind::Group, "patch", Some(&id));
    let result = async {
        let body = body?.0;
        let params = params(&req);
        let projection = params.projection()?;
        let patched = ops::patch_group(&auth.store, &id, &body, &if_match(&req)).await?;
        let mut group = patched.group;
        audit.identify(&group.document);
        audit.routed(std::mem::take(&mut group.routed));
        let version = group.version;
        let at_most = match patch_reply(&auth, patched.members_only, &params) {
            PatchReply::NoContent => return Ok(render::no_content(version)),
            PatchReply::Group => None,
            PatchReply::GroupUnlessMoreThan(n) => Some(n),
        };
        let Some(body) = group_body(&auth, group, &projection, at_most).await? else {
            return Ok(render::no_content(version));
        };
        Ok(render::encoded_resource_response(
            StatusCode::OK,
            body,
            version,
            None,
        ))
    }
    .await;
    audit.finish(&auth, &result);
    result
}

/// Whether a successful group PATCH answers 204 rather than 200 with the
/// group: always or never when configured so; by default, for a PATCH of
/// members only, without `attributes`/`excludedAttributes` (a client that
/// names them wants a representation), on a group larger than the
/// threshold, where a full reply per member change would make building the
/// group quadratic. The size comes from the membership index, counted no
/// further than the threshold, so it costs the same for any larger group.
/// (How large the group is, is read with its members when it gets them.)
fn patch_reply(auth: &Authorized<ScimWrite>, members_only: bool, params: &Params) -> PatchReply {
    let config = &auth.shared.config;
    match config.group_patch_response {
        crate::GroupPatchResponse::NoContent => PatchReply::NoContent,
        crate::GroupPatchResponse::Resource => PatchReply::Group,
        crate::GroupPatchResponse::Auto if !members_only || params.names_projection() => {
            PatchReply::Group
        }
        crate::GroupPatchResponse::Auto => {
            PatchReply::GroupUnlessMoreThan(config.group_patch_no_content_above)
        }
    }
}

/// What a successful group PATCH answers (see [`patch_reply`]).
enum PatchReply {
    /// 204 with the new ETag.
    NoContent,
    /// 200 with the group.
    Group,
    /// 200 with the group, unless it has more members than this: 204.
    GroupUnlessMoreThan(u64),
}

/// DELETE /Groups/{id}
pub(crate) async fn delete_group(
    auth: Authorized<ScimWrite>,
    PathId(id): PathId,
    req: HttpRequest,
) -> Reply {
    let mut audit = Audit::start("DELETE", Kind::Group, "delete", Some(&id));
    let result = async {
        audit.routed(ops::delete_group(&auth.store, &id, &if_match(&req)).await?);
        Ok(HttpResponse::NoContent().finish())
    }
    .await;
    audit.finish(&auth, &result);
    result
}

// ---------------------------------------------------------------- Discovery

/// GET /ServiceProviderConfig
pub(crate) async fn service_provider_config(auth: Authorized<AnyScope>) -> Reply {
    let config = ServiceProviderConfig {
        filter_max_results: u32::try_from(auth.shared.config.max_count).unwrap_or(u32::MAX),
        ..ServiceProviderConfig::default()
    };
    Ok(render::json_response(
        StatusCode::OK,
        &config.to_json(&auth.base_url),
    ))
}

/// GET /ResourceTypes
pub(crate) async fn resource_types(auth: Authorized<AnyScope>) -> Reply {
    let doc = resource_types_document(Registry::standard(), &auth.base_url);
    Ok(render::json_response(StatusCode::OK, &doc))
}

/// GET /ResourceTypes/{name}
pub(crate) async fn resource_type(auth: Authorized<AnyScope>, PathId(name): PathId) -> Reply {
    let rt = Registry::standard().resource_type(&name).ok_or_else(|| {
        scim::Error::NotFound(format!("resource type '{}' not found", clip(&name)))
    })?;
    Ok(render::json_response(
        StatusCode::OK,
        &resource_type_resource(rt, &auth.base_url),
    ))
}

/// GET /Schemas
pub(crate) async fn schemas(auth: Authorized<AnyScope>) -> Reply {
    let doc = schemas_document(Registry::standard(), &auth.base_url);
    Ok(render::json_response(StatusCode::OK, &doc))
}

/// GET /Schemas/{urn}
pub(crate) async fn schema(auth: Authorized<AnyScope>, PathId(urn): PathId) -> Reply {
    let s = Registry::standard()
        .schema(&urn)
        .ok_or_else(|| scim::Error::NotFound(format!("schema '{}' not found", clip(&urn))))?;
    Ok(render::json_response(
        StatusCode::OK,
        &schema_resource(s, &auth.base_url),
    ))
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

// ---------------------------------------------------------------- Plumbing

/// Any path under a SCIM base that names no endpoint.
pub(crate) async fn no_route(req: HttpRequest) -> Reply {
    req.extensions_mut().insert(Unmatched);
    Err(ApiError::NoRoute(clip(req.path())))
}

/// POST /.search at the SCIM root: a search across resource types at once
/// (RFC 7644 §3.4.3), which scimgate does not offer. The endpoint is defined
/// by the RFC, so the answer is 501, not 404; searches within `/Users/.search`
/// and `/Groups/.search` are supported.
pub(crate) async fn search_root(_auth: Authorized<ScimRead>) -> Reply {
    Err(ApiError::NotImplemented(
        "searching several resource types at once (POST /.search at the root; use /Users/.search or /Groups/.search)",
    ))
}

/// A known endpoint called with a method it does not support.
pub(crate) async fn not_allowed(req: HttpRequest, allow: &'static str) -> Reply {
    Err(ApiError::MethodNotAllowed {
        method: clip(req.method().as_str()),
        allow,
    })
}

// ---------------------------------------------------------------- health

/// How long one readiness check may take before it counts as failed: a
/// dependency that hangs must not make `/readyz` hang (a load balancer's
/// probe gives up after a few seconds and learns nothing).
pub const READINESS_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One dependency check: `Ok` when the dependency answers, else why not
/// (logged, never shown to the caller).
type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What `/readyz` checks: a list of named dependency checks (`"database"`,
/// and whatever a process adds next to it, e.g. `"redis"`), run
/// concurrently, each bounded by [`READINESS_CHECK_TIMEOUT`]. The process is
/// ready when every check passes. `/healthz` checks nothing: it says the
/// process is up and serving HTTP. Cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness {
    /// Each check with whether the process needs it to be ready.
    checks: Vec<(&'static str, Check, bool)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|(name, _, _)| *name).collect();
        f.debug_struct("Readiness").field("checks", &names).finish()
    }
}

/// The result of one run of every readiness check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    /// Each check by name, in the order they were added: `true` when it passed.
    pub checks: Vec<(&'static str, bool)>,
    /// The checks the process works without (degraded): reported, but
    /// their failure leaves it ready.
    pub optional: Vec<&'static str>,
}

impl ReadinessReport {
    /// True when every required check passed.
    pub fn ready(&self) -> bool {
        self.checks
            .iter()
            .all(|(name, ok)| *ok || self.optional.contains(name))
    }

    /// The `/readyz` body: `{"status":"ready"|"degraded"|"unavailable",
    /// "checks":{name:"ok"|"unavailable"}}` (`degraded`: ready, but an
    /// optional check failed).
    pub fn body(&self) -> Value {
        let checks: serde_json::Map<String, Value> = self
            .checks
            .iter()
            .map(|(name, ok)| {
                let state = if *ok { "ok" } else { "unavailable" };
                ((*name).to_owned(), Value::from(state))
            })
            .collect();
        let status = match (self.ready(), self.checks.iter().all(|(_, ok)| *ok)) {
            (true, true) => "ready",
            (true, false) => "degraded",
            (false, _) => "unavailable",
        };
        serde_json::json!({ "status": status, "checks": checks })
    }
}

impl Readiness {
    /// No checks yet: ready as long as the process serves HTTP.
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// Adds a check named `name` (a key of the `checks` object).
    pub fn with_check<F, Fut>(self, name: &'static str, check: F) -> Readiness
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        self.push(name, check, true)
    }

    /// Adds a check the process works without: its failure is reported
    /// (`"status":"degraded"`) but `/readyz` still answers 200, so a load
    /// balancer keeps sending traffic (e.g. Redis: without it each gateway
    /// limits on its own and revocations wait for the poll).
    pub fn with_optional_check<F, Fut>(self, name: &'static str, check: F) -> Readiness
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        self.push(name, check, false)
    }

    fn push<F, Fut>(mut self, name: &'static str, check: F, required: bool) -> Readiness
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((
            name,
            Arc::new(move || Box::pin(check()) as BoxFuture<'static, _>),
            required,
        ));
        self
    }

    /// Adds the optional `"redis"` check: the deployment's Redis answers
    /// `PING`.
    pub fn with_redis(self, redis: cluster::Redis) -> Readiness {
        self.with_optional_check("redis", move || {
            let redis = redis.clone();
            async move { redis.ping().await.map_err(|e| e.to_string()) }
        })
    }

    /// Adds the `"database"` check: `store` answers a trivial query.
    pub fn with_database(self, store: store::Store) -> Readiness {
        self.with_check("database", move || {
            let store = store.clone();
            async move { store.ping().await.map_err(|e| e.to_string()) }
        })
    }

    /// Runs every check at once, each bounded by [`READINESS_CHECK_TIMEOUT`];
    /// a failure is logged with its cause.
    pub async fn run(&self) -> ReadinessReport {
        let runs = self.checks.iter().map(|(name, check, _)| async move {
            let outcome = match tokio::time::timeout(READINESS_CHECK_TIMEOUT, check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {READINESS_CHECK_TIMEOUT:?}")),
            };
            if let Err(error) = &outcome {
                tracing::warn!(check = *name, %error, "readiness check failed");
            }
            (*name, outcome.is_ok())
        });
        ReadinessReport {
            checks: futures_util::future::join_all(runs).await,
            optional: self
                .checks
                .iter()
                .filter(|(_, _, required)| !required)
                .map(|(name, _, _)| *name)
                .collect(),
        }
    }

    /// Mounts `GET /healthz` and `GET /readyz` (with the request id /
    /// tracing / metrics middleware).
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            web::resource("/healthz")
                .wrap(actix_web::middleware::from_fn(crate::observe::middleware))
                .route(web::get().to(healthz)),
        );
        let readiness = self.clone();
        cfg.service(
            web::resource("/readyz")
                .wrap(actix_web::middleware::from_fn(crate::observe::middleware))
                .route(web::get().to(move || {
                    let readiness = readiness.clone();
                    async move { readyz(&readiness).await }
                })),
        );
    }
}

/// GET /healthz: the process is up.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// GET /readyz: every dependency answers (200), or not (503).
async fn readyz(readiness: &Readiness) -> HttpResponse {
    let report = readiness.run().await;
    let status = if report.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status)
        .content_type("application/json")
        .body(report.body().to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn readiness_names_each_check_and_bounds_a_hanging_one() {
        let none = Readiness::new().run().await;
        assert!(none.ready());
        assert_eq!(none.body(), json!({"status": "ready", "checks": {}}));

        let ok = Readiness::new().with_check("database", || async { Ok(()) });
        assert_eq!(
            ok.run().await.body(),
            json!({"status": "ready", "checks": {"database": "ok"}})
        );

        let started = std::time::Instant::now();
        let mixed = ok
            .with_check("redis", || async { Err("connection refused".to_owned()) })
            .with_check("hangs", std::future::pending);
        let report = mixed.run().await;
        assert!(!report.ready());
        assert_eq!(
            report.body(),
            json!({
                "status": "unavailable",
                "checks": {"database": "ok", "redis": "unavailable", "hangs": "unavailable"}
            })
        );
        let degraded = Readiness::new()
            .with_check("database", || async { Ok(()) })
            .with_optional_check("redis", || async { Err("connection refused".to_owned()) })
            .run()
            .await;
        assert!(
            degraded.ready(),
            "an optional check does not make it unready"
        );
        assert_eq!(
            degraded.body(),
            json!({"status": "degraded", "checks": {"database": "ok", "redis": "unavailable"}})
        );
        // The checks run at once, so the hanging one costs one timeout.
        assert!(started.elapsed() < READINESS_CHECK_TIMEOUT * 2);
    }
}

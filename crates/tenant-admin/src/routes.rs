//! The route table: the one list of (method, path, handler) that both
//! registers the routes and names the handlers the OpenAPI document is
//! built from, so a route cannot be served undocumented or documented
//! unserved (a test compares [`routes`] with [`openapi`]'s paths, which
//! also catches a handler whose `#[utoipa::path]` disagrees with its row).
//!
//! The document also decides which query parameters each route takes: a
//! middleware on every route refuses any other (400) before the handler
//! runs, so a misspelt or misplaced parameter (`?dryRun=true` on a route
//! without dry runs) never silently does the real thing.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, Resource, web};
use utoipa::openapi::path::Operation;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use crate::error::{self, AdminError};
use crate::handlers::{
    delivery, directory, health, logs, roles, safety, session, setup_links, super_tenants, tenants,
    tokens,
};
use crate::{BASE_PATH, MAX_BODY_BYTES, State, auth};

/// One route of the admin API, relative to [`BASE_PATH`](crate::BASE_PATH).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    /// The HTTP method, lower case as in OpenAPI (`get`, `post`, ...).
    pub method: &'static str,
    /// The path template, actix and OpenAPI syntax (`/tenants/{tenant}`).
    pub path: &'static str,
    /// True for the routes that need no session (`/login`, the document).
    pub public: bool,
}

struct Route {
    info: RouteInfo,
    add: fn(Resource) -> Resource,
}

macro_rules! route_table {
    (@public public) => { true };
    (@public bearer) => { false };
    ($( $auth:ident $method:ident $path:literal => $($handler:ident)::+ ; )*) => {
        static ROUTES: &[Route] = &[
            $(Route {
                info: RouteInfo {
                    method: stringify!($method),
                    path: $path,
                    public: route_table!(@public $auth),
                },
                add: |r| r.route(web::$method().to($($handler)::+)),
            },)*
        ];

        #[derive(OpenApi)]
        #[openapi(
            info(
                title = "scimgate admin API",
                description = "Tenants, SCIM tokens, tenant admins, role policy, role-locks, \
                               directory, provisioning and audit logs. See docs/tenant-admin-api.md.",
            ),
            servers((url = "/admin/v1")),
            paths($($($handler)::+),*),
            components(schemas(error::ErrorBody)),
            modifiers(&Conventions),
            tags(
                (name = "session", description = "Log in, who am I, this document"),
                (name = "tenants", description = "Tenants (operators create, list and delete them)"),
                (name = "admins", description = "A tenant's admin logins"),
                (name = "tokens", description = "A tenant's SCIM bearer tokens, and setup links that let a customer's IT admin issue one"),
                (name = "roles", description = "Role policy, dry runs and recompute jobs"),
                (name = "locks", description = "Role-locks on users"),
                (name = "directory", description = "Users and groups, read-only"),
                (name = "logs", description = "Provisioning and audit logs"),
                (name = "delivery", description = "Webhook targets, attempts, dead letters, the event feed, timelines"),
                (name = "safety", description = "Deletion safety: threshold, held changes, protected users, soft-deleted users, erasure"),
                (name = "health", description = "The quarantine guard: a tenant's SCIM failure ratio and what to fix"),
            ),
        )]
        struct ApiDoc;
    };
}

route_table! {
    public post "/login" => session::login;
    public get "/openapi.json" => session::openapi_json;
    bearer get "/me" => session::me;
    bearer get "/audit" => logs::global_audit;

    bearer get "/tenants" => tenants::list_tenants;
    bearer post "/tenants" => tenants::create_tenant;
    bearer get "/tenants/{tenant}" => tenants::get_tenant;
    bearer patch "/tenants/{tenant}" => tenants::update_tenant;
    bearer delete "/tenants/{tenant}" => tenants::delete_tenant;
    bearer put "/tenants/{tenant}/kind" => super_tenants::set_kind;
    bearer get "/tenants/{tenant}/children" => super_tenants::list_children;
    bearer put "/tenants/{tenant}/children/{child}" => super_tenants::link_child;
    bearer delete "/tenants/{tenant}/children/{child}" => super_tenants::unlink_child;
    bearer get "/tenants/{tenant}/routing" => super_tenants::get_routing;
    bearer put "/tenants/{tenant}/routing" => super_tenants::put_routing;
    bearer get "/tenants/{tenant}/users/{id}/copies" => super_tenants::user_copies;
    bearer get "/tenants/{tenant}/groups/{id}/copies" => super_tenants::group_copies;

    bearer get "/tenants/{tenant}/admins" => tenants::list_admins;
    bearer post "/tenants/{tenant}/admins" => tenants::create_admin;
    bearer delete "/tenants/{tenant}/admins/{id}" => tenants::delete_admin;

    bearer get "/tenants/{tenant}/tokens" => tokens::list_tokens;
    bearer post "/tenants/{tenant}/tokens" => tokens::issue_token;
    bearer delete "/tenants/{tenant}/tokens/{id}" => tokens::revoke_token;
    bearer get "/tenants/{tenant}/setup-links" => setup_links::list_setup_links;
    bearer post "/tenants/{tenant}/setup-links" => setup_links::create_setup_link;
    bearer delete "/tenants/{tenant}/setup-links/{id}" => setup_links::revoke_setup_link;

    bearer get "/tenants/{tenant}/roles" => roles::get_policy;
    bearer put "/tenants/{tenant}/roles" => roles::put_policy;
    bearer post "/tenants/{tenant}/roles/roles" => roles::add_role;
    bearer patch "/tenants/{tenant}/roles/roles/{name}" => roles::describe_role;
    bearer delete "/tenants/{tenant}/roles/roles/{name}" => roles::remove_role;
    bearer put "/tenants/{tenant}/roles/default" => roles::set_default;
    bearer put "/tenants/{tenant}/roles/mode" => roles::set_mode;
    bearer post "/tenants/{tenant}/roles/mappings" => roles::add_mapping;
    bearer delete "/tenants/{tenant}/roles/mappings/{id}" => roles::remove_mapping;
    bearer get "/tenants/{tenant}/roles/jobs" => roles::list_jobs;
    bearer get "/tenants/{tenant}/roles/jobs/{id}" => roles::get_job;

    bearer get "/tenants/{tenant}/locks" => roles::list_locks;
    bearer put "/tenants/{tenant}/users/{id}/lock" => roles::lock_user;
    bearer delete "/tenants/{tenant}/users/{id}/lock" => roles::unlock_user;

    bearer get "/tenants/{tenant}/quarantine-risk" => health::quarantine_risk;
    bearer get "/tenants/{tenant}/deletion-safety" => safety::get_policy;
    bearer put "/tenants/{tenant}/deletion-safety" => safety::put_policy;
    bearer get "/tenants/{tenant}/held-changes" => safety::list_held;
    bearer post "/tenants/{tenant}/held-changes/release" => safety::release_held;
    bearer post "/tenants/{tenant}/held-changes/discard" => safety::discard_held;
    bearer get "/tenants/{tenant}/protected-users" => safety::list_protected;
    bearer put "/tenants/{tenant}/users/{id}/protection" => safety::protect_user;
    bearer delete "/tenants/{tenant}/users/{id}/protection" => safety::unprotect_user;
    bearer get "/tenants/{tenant}/deleted-users" => safety::list_deleted;
    bearer post "/tenants/{tenant}/deleted-users/{id}/restore" => safety::restore_user;
    bearer post "/tenants/{tenant}/users/{id}/erase" => safety::erase_user;

    bearer get "/tenants/{tenant}/users" => directory::list_users;
    bearer get "/tenants/{tenant}/users/{id}" => directory::get_user;
    bearer get "/tenants/{tenant}/groups" => directory::list_groups;
    bearer get "/tenants/{tenant}/groups/{id}" => directory::get_group;

    bearer get "/tenants/{tenant}/provisioning-log" => logs::provisioning_log;
    bearer get "/tenants/{tenant}/audit" => logs::tenant_audit;

    bearer get "/tenants/{tenant}/targets" => delivery::list_targets;
    bearer post "/tenants/{tenant}/targets" => delivery::create_target;
    bearer get "/tenants/{tenant}/targets/{id}" => delivery::get_target;
    bearer patch "/tenants/{tenant}/targets/{id}" => delivery::update_target;
    bearer delete "/tenants/{tenant}/targets/{id}" => delivery::delete_target;
    bearer post "/tenants/{tenant}/targets/{id}/rotate-secret" => delivery::rotate_secret;
    bearer get "/tenants/{tenant}/targets/{id}/mapping" => delivery::get_mapping;
    bearer put "/tenants/{tenant}/targets/{id}/mapping" => delivery::put_mapping;
    bearer post "/tenants/{tenant}/targets/{id}/mapping/preview" => delivery::preview_mapping;
    bearer get "/tenants/{tenant}/targets/{id}/profile" => delivery::get_profile;
    bearer put "/tenants/{tenant}/targets/{id}/profile" => delivery::put_profile;
    bearer get "/tenants/{tenant}/targets/{id}/attempts" => delivery::attempts;
    bearer get "/tenants/{tenant}/targets/{id}/deliveries" => delivery::deliveries;
    bearer post "/tenants/{tenant}/targets/{id}/dead-letters/replay" => delivery::replay_all;
    bearer post "/tenants/{tenant}/targets/{id}/dead-letters/{delivery}/replay" => delivery::replay_one;
    bearer post "/tenants/{tenant}/targets/{id}/resend" => delivery::resend;
    bearer post "/tenants/{tenant}/targets/{id}/reconcile" => delivery::reconcile;
    bearer get "/tenants/{tenant}/jobs/{id}" => delivery::get_job;
    bearer get "/tenants/{tenant}/events" => delivery::feed;
    bearer get "/tenants/{tenant}/users/{id}/timeline" => delivery::user_timeline;
    bearer get "/tenants/{tenant}/groups/{id}/timeline" => delivery::group_timeline;
}

/// Every route the admin API serves, in table order.
pub fn routes() -> Vec<RouteInfo> {
    ROUTES.iter().map(|r| r.info).collect()
}

/// The OpenAPI 3 document of the admin API (what `GET
/// /admin/v1/openapi.json` serves).
pub fn openapi() -> Document {
    ApiDoc::openapi()
}

/// The `/admin/v1` scope: every route, the shared extractor settings and a
/// JSON 404 for paths that are not routes.
pub(crate) fn scope(state: web::Data<State>) -> actix_web::Scope {
    let mut scope = web::scope(BASE_PATH)
        .app_data(state)
        .app_data(
            web::JsonConfig::default()
                .limit(MAX_BODY_BYTES)
                .error_handler(error::json_error),
        )
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .default_service(web::to(no_route));
    // One resource per path, so a known path with an unknown method is 405
    // (with Allow) rather than a 404.
    let mut paths: Vec<&'static str> = Vec::new();
    for route in ROUTES {
        if !paths.contains(&route.info.path) {
            paths.push(route.info.path);
        }
    }
    for path in paths {
        let rows: Vec<&Route> = ROUTES.iter().filter(|r| r.info.path == path).collect();
        let allow = rows
            .iter()
            .map(|r| r.info.method.to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(", ");
        let public = rows.iter().all(|r| r.info.public);
        let resource = rows
            .iter()
            .fold(web::resource(path), |resource, row| (row.add)(resource))
            .default_service(web::to(move |req: HttpRequest| {
                let allow = allow.clone();
                async move {
                    Err::<actix_web::HttpResponse, _>(AdminError::MethodNotAllowed {
                        method: req.method().to_string(),
                        allow,
                    })
                }
            }));
        // The query check runs inside authentication: callers without a
        // session learn nothing about routes but that they need one.
        let resource = resource.wrap(from_fn(refuse_unknown_query));
        scope = if public {
            scope.service(resource)
        } else {
            scope.service(resource.wrap(from_fn(auth::authenticate)))
        };
    }
    scope
}

/// Query parameter names by (method, path), from the OpenAPI document.
fn query_parameters() -> &'static HashMap<(&'static str, &'static str), Vec<String>> {
    static PARAMETERS: OnceLock<HashMap<(&'static str, &'static str), Vec<String>>> =
        OnceLock::new();
    PARAMETERS.get_or_init(|| {
        let doc = openapi();
        let mut out = HashMap::new();
        for route in ROUTES {
            let info = route.info;
            let operation = doc
                .paths
                .paths
                .get(info.path)
                .and_then(|item| match info.method {
                    "get" => item.get.as_ref(),
                    "post" => item.post.as_ref(),
                    "put" => item.put.as_ref(),
                    "patch" => item.patch.as_ref(),
                    "delete" => item.delete.as_ref(),
                    _ => None,
                });
            let mut names: Vec<String> = operation
                .and_then(|op| op.parameters.as_ref())
                .into_iter()
                .flatten()
                .filter(|p| matches!(p.parameter_in, ParameterIn::Query))
                .map(|p| p.name.clone())
                .collect();
            // The one documented alias (see `wire::DryRunQuery`).
            if names.iter().any(|n| n == "dryRun") {
                names.push("dry_run".to_owned());
            }
            out.insert((info.method, info.path), names);
        }
        out
    })
}

/// Refuses query parameters the route does not document (400).
async fn refuse_unknown_query(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let query = req.query_string();
    if !query.is_empty() {
        let method = req.method().as_str().to_ascii_lowercase();
        let pattern = req.match_pattern().unwrap_or_default();
        let path = pattern.strip_prefix(BASE_PATH).unwrap_or(&pattern);
        let allowed = ROUTES
            .iter()
            .find(|r| r.info.method == method && r.info.path == path)
            .and_then(|r| query_parameters().get(&(r.info.method, r.info.path)));
        // No row: a method the path does not serve, answered 405 inside.
        if let Some(allowed) = allowed {
            let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
                .map_err(|e| AdminError::BadRequest(format!("invalid query string: {e}")))?;
            if let Some((name, _)) = pairs.iter().find(|(name, _)| !allowed.contains(name)) {
                let expected = allowed
                    .iter()
                    .filter(|n| *n != "dry_run")
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>();
                let message = if expected.is_empty() {
                    format!(
                        "invalid query string: unknown field `{name}`: this route takes no query parameters"
                    )
                } else {
                    format!(
                        "invalid query string: unknown field `{name}`, expected one of {}",
                        expected.join(", ")
                    )
                };
                return Err(AdminError::BadRequest(message).into());
            }
        }
    }
    next.call(req).await
}

async fn no_route(req: HttpRequest) -> Result<actix_web::HttpResponse, AdminError> {
    Err(AdminError::NotFound(format!(
        "admin API endpoint {}",
        req.path()
    )))
}

/// Applies what holds for every operation, from the route table, so the
/// handlers' annotations only say what is particular to them: the bearer
/// scheme (and which operations need no session), and the error answers
/// every operation of a kind can give.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A session token from POST /login"))
                    .build(),
            ),
        );
        for route in ROUTES {
            let Some(item) = doc.paths.paths.get_mut(route.info.path) else {
                continue;
            };
            let operation = match route.info.method {
                "get" => item.get.as_mut(),
                "post" => item.post.as_mut(),
                "put" => item.put.as_mut(),
                "patch" => item.patch.as_mut(),
                "delete" => item.delete.as_mut(),
                _ => None,
            };
            let Some(operation) = operation else {
                continue;
            };
            apply_conventions(operation, route.info);
        }
    }
}

fn apply_conventions(operation: &mut Operation, route: RouteInfo) {
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build(),
        )
    };
    let mut add = |status: &str, description: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error(description));
    };
    if route.path == "/openapi.json" {
        return;
    }
    add(
        "400",
        "Invalid input: malformed JSON, an unknown field, a wrong type or an invalid value",
    );
    if !route.public {
        add(
            "401",
            "No valid session: missing, malformed, tampered or expired token",
        );
    }
    if route.path.contains('{') {
        add(
            "404",
            "No such tenant or resource, or a tenant the caller may not see",
        );
    }
    if matches!(route.method, "post" | "put" | "patch") {
        add("413", "The request body is larger than 64 KiB");
        add("415", "The request body is not JSON");
    }
    add("503", "The database is unavailable; retry later");
    // An absent If-Match means "any version"; a present one is never null
    // (utoipa would make the optional header nullable).
    for parameter in operation.parameters.iter_mut().flatten() {
        if parameter.name == "If-Match"
            && let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut()
        {
            object.schema_type = SchemaType::Type(Type::String);
        }
    }
    operation.security = Some(if route.public {
        Vec::new()
    } else {
        vec![SecurityRequirement::new("bearer", Vec::<String>::new())]
    });
}

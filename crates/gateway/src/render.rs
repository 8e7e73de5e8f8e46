//! Stored resources to SCIM responses: `id`, `meta`, the attributes kept in
//! tables (`members`, `groups`), projection, headers.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use scim::meta::{Meta, etag, location};
use scim::patch::Member;
use scim::schemas::LIST_RESPONSE;
use serde_json::{Map, Value, json};
use store::{GroupRef, Resource};

use crate::GatewayConfig;
use crate::error::SCIM_CONTENT_TYPE;

/// The base URL of the SCIM endpoint the request addressed: the tenant's
/// slug route or the token-resolved one, under the configured public URL
/// or, failing that, the scheme and host the request names.
pub(crate) fn base_url(req: &HttpRequest, config: &GatewayConfig, slug: &str) -> String {
    let origin = match &config.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    };
    if req.match_info().get("slug").is_some() {
        format!("{origin}/tenants/{slug}/scim/v2")
    } else {
        format!("{origin}/scim/v2")
    }
}

/// The resource types this service serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `/Users`
    User,
    /// `/Groups`
    Group,
}

// Names, endpoints and URNs come from the schema registry, the one place
// that knows them.
impl Kind {
    pub(crate) fn name(self) -> &'static str {
        &self.schema().resource_type.name
    }
    pub(crate) fn endpoint(self) -> &'static str {
        self.schema().resource_type.endpoint.trim_start_matches('/')
    }
    pub(crate) fn schema(self) -> scim::ResourceSchema<'static> {
        match self {
            Kind::User => scim::ResourceSchema::user(),
            Kind::Group => scim::ResourceSchema::group(),
        }
    }
}

/// The absolute URI of a resource.
pub(crate) fn resource_location(base: &str, kind: Kind, id: &str) -> String {
    location(base, kind.endpoint(), id)
}

/// The full representation of a stored resource (before projection):
/// `schemas`, `id`, the document, the table-backed attribute if loaded,
/// then `meta`.
pub(crate) fn resource(res: &Resource, kind: Kind, extra: Option<Value>, base: &str) -> Value {
    let mut out = Map::new();
    let doc = res.document.as_object();
    if let Some(s) = doc.and_then(|d| d.get("schemas")) {
        out.insert("schemas".into(), s.clone());
    } else {
        out.insert("schemas".into(), json!([kind.schema().core().id]));
    }
    out.insert("id".into(), Value::String(res.id.clone()));
    for (k, v) in doc.into_iter().flatten() {
        if !matches!(k.as_str(), "schemas" | "id" | "meta" | "members" | "groups") {
            out.insert(k.clone(), v.clone());
        }
    }
    if let Some(v) = extra {
        let key = match kind {
            Kind::User => "groups",
            Kind::Group => "members",
        };
        out.insert(key.into(), v);
    }
    let meta = Meta {
        resource_type: kind.name().into(),
        created: res.created,
        last_modified: res.last_modified,
        location: resource_location(base, kind, &res.id),
        version: res.version,
    };
    out.insert("meta".into(), meta.to_json());
    Value::Object(out)
}

/// A User's read-only `groups` (RFC 7643 §4.1.2): direct memberships.
pub(crate) fn groups(refs: &[GroupRef], base: &str) -> Value {
    Value::Array(
        refs.iter()
            .map(|g| {
                json!({
                    "value": g.id,
                    "$ref": resource_location(base, Kind::Group, &g.id),
                    "display": g.display,
                    "type": "direct",
                })
            })
            .collect(),
    )
}

/// A Group's `members`, with `$ref` filled in where the member's type is
/// known and the client sent none.
pub(crate) fn members(members: &[Member], base: &str) -> Value {
    Value::Array(
        members
            .iter()
            .map(|m| {
                let mut m = m.clone();
                if m.reference.is_none() {
                    let kind = match m.r#type.as_deref() {
                        Some(t) if t.eq_ignore_ascii_case("User") => Some(Kind::User),
                        Some(t) if t.eq_ignore_ascii_case("Group") => Some(Kind::Group),
                        _ => None,
                    };
                    m.reference = kind.map(|k| resource_location(base, k, &m.value));
                }
                m.to_json()
            })
            .collect(),
    )
}

/// An RFC 7644 §3.4.2 ListResponse.
pub(crate) fn list(total: u64, start_index: u64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": start_index,
        "Resources": resources,
    })
}

/// A SCIM JSON response.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE))
        .body(body.to_string())
}

/// A response carrying one resource, with its `ETag` (and `Location` for
/// a create).
pub(crate) fn resource_response(
    status: StatusCode,
    body: &Value,
    version: u64,
    location: Option<String>,
) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE))
        .insert_header((header::ETAG, etag(version)));
    if let Some(l) = location {
        b.insert_header((header::LOCATION, l));
    }
    b.body(body.to_string())
}

/// `204 No Content` after a write, with the resource's new `ETag`.
pub(crate) fn no_content(version: u64) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ETAG, etag(version)))
        .finish()
}

/// `304 Not Modified` for a matching `If-None-Match`.
pub(crate) fn not_modified(version: u64) -> HttpResponse {
    HttpResponse::NotModified()
        .insert_header((header::ETAG, etag(version)))
        .finish()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn sample() -> Resource {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        Resource {
            id: "u1".into(),
            document: json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "bjensen",
                "active": false
            }),
            version: 3,
            created: t,
            last_modified: t,
            members: None,
        }
    }

    #[test]
    fn renders_id_meta_and_groups() {
        let refs = [GroupRef {
            id: "g1".into(),
            display: "Admins".into(),
        }];
        let v = resource(
            &sample(),
            Kind::User,
            Some(groups(&refs, "https://h/scim/v2")),
            "https://h/scim/v2",
        );
        assert_eq!(
            v,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "u1",
                "userName": "bjensen",
                "active": false,
                "groups": [{
                    "value": "g1",
                    "$ref": "https://h/scim/v2/Groups/g1",
                    "display": "Admins",
                    "type": "direct"
                }],
                "meta": {
                    "resourceType": "User",
                    "created": "2024-01-02T03:04:05.000Z",
                    "lastModified": "2024-01-02T03:04:05.000Z",
                    "location": "https://h/scim/v2/Users/u1",
                    "version": "W/\"3\""
                }
            })
        );
    }

    #[test]
    fn member_refs_are_filled_only_when_the_type_is_known() {
        let mut typed = Member::new("u9");
        typed.r#type = Some("User".into());
        let v = members(&[typed, Member::new("x")], "https://h/v2");
        assert_eq!(
            v,
            json!([
                {"value": "u9", "type": "User", "$ref": "https://h/v2/Users/u9"},
                {"value": "x"}
            ])
        );
    }

    #[test]
    fn list_response_counts_its_page() {
        let v = list(5, 3, vec![json!({"id": "a"})]);
        assert_eq!(v["totalResults"], 5);
        assert_eq!(v["itemsPerPage"], 1);
        assert_eq!(v["startIndex"], 3);
    }
}

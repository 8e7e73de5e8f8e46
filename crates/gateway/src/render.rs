//! Stored resources to SCIM responses: the HTTP side. The JSON of a
//! resource (`id`, `meta`, `members`, `groups`, effective roles) is
//! [`store::render`]'s, shared with the sync worker; this module adds what
//! needs a request: the base URL, list responses, encoding, headers, and
//! splicing the database's member JSON into a group's reply.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use scim::meta::etag;
use scim::schemas::LIST_RESPONSE;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
pub(crate) use store::render::{Kind, is_roles_urn, location_prefix, resource_location};

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

/// A group's body with its `members` array spliced in as the database
/// wrote it, where [`resource`] would have put it (before `meta`).
pub(crate) fn encode_with_members(group: &Value, members: &RawValue) -> Vec<u8> {
    /// Serializes the group's entries with `members` inserted.
    struct Spliced<'a> {
        group: &'a Map<String, Value>,
        members: &'a RawValue,
    }
    impl Serialize for Spliced<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.group.len() + 1))?;
            let mut placed = false;
            for (k, v) in self.group {
                if !placed && k == "meta" {
                    map.serialize_entry("members", self.members)?;
                    placed = true;
                }
                if k != "members" {
                    map.serialize_entry(k, v)?;
                }
            }
            if !placed {
                map.serialize_entry("members", self.members)?;
            }
            map.end()
        }
    }
    let empty = Map::new();
    let group = group.as_object().unwrap_or(&empty);
    serde_json::to_vec(&Spliced { group, members }).unwrap_or_default()
}

/// A response body's bytes. Straight into a byte buffer: `to_string`
/// goes through `fmt::Write` a piece at a time.
pub(crate) fn encode(body: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: its map keys are strings.
    serde_json::to_vec(body).unwrap_or_default()
}

/// A SCIM JSON response.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE))
        .body(encode(body))
}

/// A response carrying one resource, with its `ETag` (and `Location` for
/// a create).
pub(crate) fn resource_response(
    status: StatusCode,
    body: &Value,
    version: u64,
    location: Option<String>,
) -> HttpResponse {
    encoded_resource_response(status, encode(body), version, location)
}

/// [`resource_response`] for a body already encoded.
pub(crate) fn encoded_resource_response(
    status: StatusCode,
    body: Vec<u8>,
    version: u64,
    location: Option<String>,
) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE))
        .insert_header((header::ETAG, etag(version)));
    if let Some(l) = location {
        b.insert_header((header::LOCATION, l));
    }
    b.body(body)
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
    use super::*;

    #[test]
    fn list_response_counts_its_page() {
        let v = list(5, 3, vec![json!({"id": "a"})]);
        assert_eq!(v["totalResults"], 5);
        assert_eq!(v["itemsPerPage"], 1);
        assert_eq!(v["startIndex"], 3);
    }

    #[test]
    fn members_are_spliced_before_meta() {
        let group =
            json!({"id": "g", "members": [{"value": "old"}], "meta": {"version": "W/\"1\""}});
        let members = RawValue::from_string(r#"[{"value":"u1"}]"#.to_owned()).unwrap();
        let body = encode_with_members(&group, &members);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"id":"g","members":[{"value":"u1"}],"meta":{"version":"W/\"1\""}}"#
        );
    }
}

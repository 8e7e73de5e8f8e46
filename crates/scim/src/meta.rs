//! The `meta` attribute (RFC 7643 §3.1), weak ETags and the `If-Match` /
//! `If-None-Match` preconditions (RFC 7644 §3.14, RFC 9110 §8.8.3, §13.1).
//!
//! A resource's version is a counter the store bumps on every write; its
//! ETag is the weak tag `W/"<n>"`. Weak, because the same version may be
//! serialized differently (attribute order, projection), so byte-for-byte
//! equality of representations — what a strong tag promises — does not hold.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// The server-maintained metadata of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The resource type's name, e.g. "User".
    pub resource_type: String,
    /// When the resource was created.
    pub created: DateTime<Utc>,
    /// When the resource was last modified.
    pub last_modified: DateTime<Utc>,
    /// The resource's absolute URI (see [`location`]).
    pub location: String,
    /// The resource's version counter, rendered as a weak ETag.
    pub version: u64,
}

impl Meta {
    /// The RFC 7643 §3.1 `meta` object; timestamps in UTC with millisecond
    /// precision, as in the RFC 7644 examples, `version` as the ETag.
    pub fn to_json(&self) -> Value {
        let mut m = Map::with_capacity(5);
        m.insert(
            "resourceType".into(),
            Value::String(self.resource_type.clone()),
        );
        m.insert("created".into(), Value::String(timestamp(self.created)));
        m.insert(
            "lastModified".into(),
            Value::String(timestamp(self.last_modified)),
        );
        m.insert("location".into(), Value::String(self.location.clone()));
        m.insert("version".into(), Value::String(etag(self.version)));
        Value::Object(m)
    }
}

/// Formats a timestamp the one way this crate writes them:
/// `2011-08-01T21:32:44.882Z` (RFC 3339, UTC, milliseconds).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The weak ETag of a version: `W/"<n>"`.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// True when an `If-Match` header allows a write to a resource at
/// `current_version` (else the gateway answers 412).
///
/// Accepts `*` and comma-separated lists of entity-tags. Comparison is weak
/// (`W/"3"` and `"3"` both match version 3): RFC 9110 asks for strong
/// comparison here, but every tag this server issues is weak, so a strong
/// comparison could never succeed and clients (which echo `meta.version` or
/// the `ETag` header, with or without the `W/`) could never write
/// conditionally; RFC 7644 §3.14 shows exactly that weak echo. A header
/// that does not parse matches nothing.
pub fn if_match(header: &str, current_version: u64) -> bool {
    matches(header, current_version)
}

/// True when an `If-None-Match` header lets the request proceed, i.e. no
/// listed tag matches `current_version` (and the header is not `*`).
///
/// Weak comparison, as RFC 9110 §13.1.2 prescribes. A header that does not
/// parse matches nothing, so the request proceeds.
pub fn if_none_match(header: &str, current_version: u64) -> bool {
    !matches(header, current_version)
}

/// The absolute URI of a resource: `base_url` + `endpoint` + `id`, with
/// exactly one slash between the parts whatever slashes the inputs carry.
pub fn location(base_url: &str, endpoint: &str, id: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let endpoint = endpoint.trim_matches('/');
    let mut out = String::with_capacity(base.len() + endpoint.len() + id.len() + 2);
    out.push_str(base);
    if !endpoint.is_empty() {
        out.push('/');
        out.push_str(endpoint);
    }
    if !id.is_empty() {
        out.push('/');
        out.push_str(id);
    }
    out
}

/// One parsed precondition header.
enum Condition<'a> {
    /// `*`: any current representation.
    Any,
    /// A list of opaque tags (the part between the quotes, `W/` dropped).
    Tags(Vec<&'a str>),
}

fn matches(header: &str, current_version: u64) -> bool {
    match parse_condition(header) {
        Some(Condition::Any) => true,
        Some(Condition::Tags(tags)) => {
            let current = current_version.to_string();
            tags.iter().any(|t| *t == current)
        }
        None => false,
    }
}

/// Parses `"*"` or `1#entity-tag` (RFC 9110 §8.8.3); `None` if malformed.
///
/// Tags may legally contain commas, so the list is tokenized rather than
/// split on `,`.
fn parse_condition(header: &str) -> Option<Condition<'_>> {
    let trimmed = header.trim_matches(is_ows);
    if trimmed == "*" {
        return Some(Condition::Any);
    }
    let mut tags = Vec::new();
    let mut rest = trimmed;
    loop {
        rest = rest.trim_start_matches(|c: char| is_ows(c) || c == ',');
        if rest.is_empty() {
            break;
        }
        let after_weak = rest.strip_prefix("W/").unwrap_or(rest);
        let body = after_weak.strip_prefix('"')?;
        let end = body.find('"')?;
        let tag = body.get(..end)?;
        if !tag.bytes().all(is_etagc) {
            return None;
        }
        tags.push(tag);
        rest = body.get(end + 1..)?;
        // After a tag: only whitespace, then a comma or the end.
        let next = rest.trim_start_matches(is_ows);
        if !(next.is_empty() || next.starts_with(',')) {
            return None;
        }
        rest = next;
    }
    if tags.is_empty() {
        None
    } else {
        Some(Condition::Tags(tags))
    }
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `etagc = %x21 / %x23-7E / obs-text` (RFC 9110 §8.8.3).
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    #[test]
    fn meta_renders_rfc7643_3_1_with_millisecond_timestamps() {
        let created = Utc.with_ymd_and_hms(2011, 8, 1, 18, 29, 49).unwrap()
            + chrono::Duration::milliseconds(793);
        let meta = Meta {
            resource_type: "User".into(),
            created,
            last_modified: Utc.with_ymd_and_hms(2011, 8, 1, 18, 29, 49).unwrap(),
            location: location("https://example.com/v2/", "/Users/", "2819c223"),
            version: 7,
        };
        let v = meta.to_json();
        assert_eq!(
            v,
            json!({
                "resourceType": "User",
                "created": "2011-08-01T18:29:49.793Z",
                "lastModified": "2011-08-01T18:29:49.000Z",
                "location": "https://example.com/v2/Users/2819c223",
                "version": "W/\"7\""
            })
        );
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "resourceType",
                "created",
                "lastModified",
                "location",
                "version"
            ]
        );
    }

    #[test]
    fn etag_is_weak() {
        assert_eq!(etag(0), "W/\"0\"");
        assert_eq!(etag(u64::MAX), format!("W/\"{}\"", u64::MAX));
    }

    #[test]
    fn location_joins_with_exactly_one_slash() {
        for (base, endpoint) in [
            ("https://h/scim/v2", "Users"),
            ("https://h/scim/v2/", "/Users"),
            ("https://h/scim/v2//", "/Users/"),
            ("https://h/scim/v2", "/Users"),
        ] {
            assert_eq!(location(base, endpoint, "42"), "https://h/scim/v2/Users/42");
        }
        assert_eq!(
            location("https://h/", "ServiceProviderConfig", ""),
            "https://h/ServiceProviderConfig"
        );
    }

    #[test]
    fn weak_and_strong_forms_of_the_current_version_match() {
        assert!(if_match("W/\"3\"", 3));
        assert!(if_match("\"3\"", 3));
        assert!(!if_match("W/\"4\"", 3));
        assert!(!if_match("W/\"03\"", 3));
        assert!(if_match(" W/\"1\" , W/\"3\" ", 3));
        assert!(if_match("W/\"1\",\"3\"", 3));
        assert!(if_match("W/\"a,b\", W/\"3\"", 3));
        assert!(if_match("*", 0));
        assert!(if_match(" * ", 9));
    }

    #[test]
    fn if_none_match_proceeds_only_when_nothing_matches() {
        assert!(!if_none_match("W/\"3\"", 3));
        assert!(!if_none_match("\"3\"", 3));
        assert!(!if_none_match("W/\"1\", W/\"3\"", 3));
        assert!(!if_none_match("*", 3));
        assert!(if_none_match("W/\"2\"", 3));
        assert!(if_none_match("W/\"2\", \"4\"", 3));
    }

    #[test]
    fn garbage_matches_nothing() {
        for h in [
            "",
            " ",
            "3",
            "W/3",
            "\"3",
            "W/\"3\" junk",
            "W/\"3\" \"4\"",
            "**",
            "*, W/\"3\"",
            "w/\"3\"",
            ",",
            "W/\"3\u{7f}\"",
            "W/\"3 \"",
            "\u{0}",
            "W/\u{e9}\"3\"",
        ] {
            assert!(!if_match(h, 3), "{h:?}");
            assert!(if_none_match(h, 3), "{h:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_header_is_safe_and_our_own_tags_round_trip(h in ".*", v in proptest::prelude::any::<u64>()) {
            let _ = (if_match(&h, v), if_none_match(&h, v));
            proptest::prop_assert!(if_match(&etag(v), v));
            proptest::prop_assert!(!if_none_match(&etag(v), v));
            proptest::prop_assert!(!if_match(&etag(v), v.wrapping_add(1)));
        }
    }
}

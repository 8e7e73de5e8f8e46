//! List requests (RFC 7644 §3.4.2, §3.4.3): query parameters and
//! SearchRequest bodies to one bounded [`ListRequest`].
//!
//! Decisions where the RFC leaves room:
//! - parameter names match ignoring case, and parameters this service does
//!   not know (`aadOptscim062020`, tracing ids) are ignored;
//! - `count` below 0 is 0 (RFC 7644 §3.4.2.4: "interpreted as 0"), above
//!   the maximum it is capped, not refused; `startIndex` below 1 is 1;
//! - a value that is not an integer is `invalidValue`;
//! - `sortOrder` without `sortBy` is ignored; other than
//!   ascending/descending (any case) it is `invalidValue`.
//! - a filter naming the scimgate extension (effective roles) or one of its
//!   attributes is `invalidFilter`, and sorting by one `invalidValue`:
//!   responses render it from the roles table, while lists filter and sort
//!   the stored documents, which never hold it, so the answer would
//!   silently be wrong.

use scim::filter;
use scim::projection::Projection;
use scim::schemas::{ResourceSchema, SEARCH_REQUEST, names_scimgate_user};
use scim::{AttrPath, Error};
use serde_json::Value;
use store::ListQuery;

use crate::GatewayConfig;

/// The query string, as ordered name/value pairs.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string; malformed escapes decode lossily.
    pub fn parse(query: &str) -> Params {
        Params(serde_urlencoded::from_str(query).unwrap_or_default())
    }

    /// The first value of a parameter, name matched ignoring case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True when the request names `attributes` or `excludedAttributes`,
    /// even empty: the client asked for a representation.
    pub fn names_projection(&self) -> bool {
        self.get("attributes").is_some() || self.get("excludedAttributes").is_some()
    }

    /// The `attributes` / `excludedAttributes` projection.
    pub fn projection(&self) -> Result<Projection, Error> {
        Projection::parse(self.get("attributes"), self.get("excludedAttributes"))
    }
}

/// A parsed, bounded list request.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// What the store runs (`with_members` still to be set by the caller).
    pub query: ListQuery,
    /// What the response shows.
    pub projection: Projection,
}

/// The untyped inputs of a list request, from either source.
#[derive(Default)]
struct Raw {
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<Num>,
    count: Option<Num>,
}

/// An integer as sent: parsed with saturation, so huge values are bounded
/// rather than refused or overflowed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Negative,
    NonNegative(u64),
}

fn parse_num(name: &str, s: &str) -> Result<Num, Error> {
    let t = s.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidValue(format!(
            "'{name}' must be an integer, got '{}'",
            s.chars().take(40).collect::<String>()
        )));
    }
    if neg && digits.bytes().any(|b| b != b'0') {
        return Ok(Num::Negative);
    }
    let n = digits.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    });
    Ok(Num::NonNegative(n))
}

fn json_num(name: &str, v: &Value) -> Result<Option<Num>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(Num::NonNegative(u)))
            } else if n.as_i64().is_some() {
                Ok(Some(Num::Negative))
            } else {
                // A float: only whole values are integers.
                parse_num(name, &n.to_string()).map(Some)
            }
        }
        Value::String(s) => parse_num(name, s).map(Some),
        _ => Err(Error::InvalidValue(format!("'{name}' must be an integer"))),
    }
}

fn build(
    raw: Raw,
    projection: Projection,
    schema: ResourceSchema<'_>,
    config: &GatewayConfig,
) -> Result<ListRequest, Error> {
    let filter = match raw.filter.as_deref() {
        Some(f) => {
            let parsed = filter::parse_with(f, &config.filter_limits)?;
            filter::check(&parsed, schema)?;
            if let Some(path) = parsed.find_path(names_scimgate_user) {
                return Err(Error::filter(
                    0,
                    format!(
                        "'{path}' cannot be filtered on: the effective-roles extension \
                         is computed, not stored"
                    ),
                ));
            }
            Some(parsed)
        }
        None => None,
    };
    let sort_by = match raw.sort_by.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Some(AttrPath::parse(s)?),
        _ => None,
    };
    if let Some(path) = sort_by.as_ref().filter(|p| names_scimgate_user(p)) {
        return Err(Error::InvalidValue(format!(
            "cannot sort by '{path}': the effective-roles extension is computed, not stored"
        )));
    }
    let descending = match raw.sort_order.as_deref().map(str::trim) {
        None | Some("") => false,
        Some(o) if o.eq_ignore_ascii_case("ascending") => false,
        Some(o) if o.eq_ignore_ascii_case("descending") => true,
        Some(o) => {
            return Err(Error::InvalidValue(format!(
                "sortOrder must be 'ascending' or 'descending', got '{}'",
                o.chars().take(40).collect::<String>()
            )));
        }
    };
    let start_index = match raw.start_index {
        None | Some(Num::Negative) => 1,
        Some(Num::NonNegative(n)) => n.max(1),
    };
    let count = match raw.count {
        None => config.default_count.min(config.max_count),
        Some(Num::Negative) => 0,
        Some(Num::NonNegative(n)) => n.min(config.max_count),
    };
    Ok(ListRequest {
        query: ListQuery {
            filter,
            sort_by,
            descending,
            start_index,
            count,
            with_members: false,
            user_extras: Default::default(),
        },
        projection,
    })
}

/// A list request from `GET /Users?...`.
pub fn from_params(
    params: &Params,
    schema: ResourceSchema<'_>,
    config: &GatewayConfig,
) -> Result<ListRequest, Error> {
    let num = |name: &str| params.get(name).map(|v| parse_num(name, v)).transpose();
    let raw = Raw {
        filter: params.get("filter").map(str::to_owned),
        sort_by: params.get("sortBy").map(str::to_owned),
        sort_order: params.get("sortOrder").map(str::to_owned),
        start_index: num("startIndex")?,
        count: num("count")?,
    };
    build(raw, params.projection()?, schema, config)
}

/// A list request from a `POST /Users/.search` SearchRequest body
/// (RFC 7644 §3.4.3). `attributes` may be an array or a comma list.
pub fn from_search(
    body: &Value,
    schema: ResourceSchema<'_>,
    config: &GatewayConfig,
) -> Result<ListRequest, Error> {
    let Value::Object(o) = body else {
        return Err(Error::InvalidSyntax(
            "a SearchRequest must be a JSON object".into(),
        ));
    };
    let get = |name: &str| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let listed = match get("schemas") {
        Some(Value::Array(a)) => a.iter().any(|s| {
            s.as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(SEARCH_REQUEST))
        }),
        _ => false,
    };
    if !listed {
        return Err(Error::InvalidSyntax(format!(
            "a SearchRequest must list '{SEARCH_REQUEST}' in 'schemas'"
        )));
    }
    let text = |name: &str| -> Result<Option<String>, Error> {
        match get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Error::InvalidValue(format!("'{name}' must be a string"))),
        }
    };
    let list = |name: &str| -> Result<Option<String>, Error> {
        match get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str().map(str::to_owned).ok_or_else(|| {
                        Error::InvalidValue(format!("'{name}' must be a list of attribute names"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|v| Some(v.join(","))),
            Some(_) => Err(Error::InvalidValue(format!(
                "'{name}' must be a list of attribute names"
            ))),
        }
    };
    let num = |name: &str| get(name).map_or(Ok(None), |v| json_num(name, v));
    let raw = Raw {
        filter: text("filter")?,
        sort_by: text("sortBy")?,
        sort_order: text("sortOrder")?,
        start_index: num("startIndex")?,
        count: num("count")?,
    };
    let attributes = list("attributes")?;
    let excluded = list("excludedAttributes")?;
    let projection = Projection::parse(attributes.as_deref(), excluded.as_deref())?;
    build(raw, projection, schema, config)
}

#[cfg(test)]
mod tests {
    use scim::ScimType;
    use serde_json::json;

    use super::*;

    fn users() -> ResourceSchema<'static> {
        ResourceSchema::user()
    }

    fn q(s: &str) -> Result<ListRequest, Error> {
        from_params(&Params::parse(s), users(), &GatewayConfig::default())
    }

    fn enc(s: &str) -> String {
        serde_urlencoded::to_string([("x", s)])
            .map(|e| e.trim_start_matches("x=").to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn paging_is_bounded_not_refused() {
        let r = q("").unwrap().query;
        assert_eq!((r.start_index, r.count), (1, 100));
        let r = q("startIndex=-5&count=-1").unwrap().query;
        assert_eq!((r.start_index, r.count), (1, 0));
        let r = q("startIndex=0&count=99999999999999999999999")
            .unwrap()
            .query;
        assert_eq!((r.start_index, r.count), (1, 1000));
        let r = q("STARTINDEX=7&Count=3").unwrap().query;
        assert_eq!((r.start_index, r.count), (7, 3));
        let r = q("count=-0").unwrap().query;
        assert_eq!(r.count, 0);
    }

    #[test]
    fn non_numeric_paging_is_invalid_value() {
        for s in [
            "count=ten",
            "startIndex=1.5",
            "count=",
            "count=0x10",
            "startIndex=--1",
        ] {
            let e = q(s).unwrap_err();
            assert_eq!(e.scim_type(), Some(ScimType::InvalidValue), "{s}");
        }
    }

    #[test]
    fn filters_sorting_and_unknown_parameters() {
        let r = q(
            "aadOptscim062020&filter=userName%20eq%20%22a%22&sortBy=userName&sortOrder=DESCENDING",
        )
        .unwrap()
        .query;
        assert!(r.filter.is_some());
        assert_eq!(r.sort_by, Some(AttrPath::new("userName")));
        assert!(r.descending);
        assert_eq!(
            q("filter=userName%20eq").unwrap_err().scim_type(),
            Some(ScimType::InvalidFilter)
        );
        assert_eq!(
            q("filter=active%20gt%20true").unwrap_err().scim_type(),
            Some(ScimType::InvalidFilter)
        );
        assert_eq!(
            q("sortBy=userName&sortOrder=up").unwrap_err().scim_type(),
            Some(ScimType::InvalidValue)
        );
        assert!(q("sortBy=a..b").is_err());
        let long = format!("filter={}", "userName eq \"a\" or ".repeat(500));
        assert_eq!(
            q(&long).unwrap_err().scim_type(),
            Some(ScimType::InvalidFilter)
        );
    }

    #[test]
    fn the_roles_extension_cannot_be_filtered_or_sorted_on() {
        let ext = scim::schemas::SCIMGATE_USER;
        for f in [
            format!("{ext}:disabled eq true"),
            format!("userName sw \"a\" and not ({ext}:locked eq false)"),
            format!("{ext}:effectiveRoles[value eq \"admin\"]"),
            format!("{ext}:effectiveRoles.value eq \"admin\""),
            format!("{ext}:nonsense pr"),
            format!("{} pr", ext.to_lowercase()),
        ] {
            let e = q(&format!("filter={}", enc(&f))).unwrap_err();
            assert_eq!(e.scim_type(), Some(ScimType::InvalidFilter), "{f}");
        }
        let e = q(&format!("sortBy={}", enc(&format!("{ext}:disabled")))).unwrap_err();
        assert_eq!(e.scim_type(), Some(ScimType::InvalidValue));
        // Unqualified names are not the extension's: custom attributes, as before.
        assert!(q("filter=disabled%20eq%20true&sortBy=locked").is_ok());
        // Inside a value filter, names are the filtered attribute's.
        assert!(q(&format!("filter={}", enc("emails[value pr]"))).is_ok());
    }

    #[test]
    fn search_request_bodies() {
        let cfg = GatewayConfig::default();
        let body = json!({
            "schemas": [SEARCH_REQUEST],
            "attributes": ["userName", "emails"],
            "filter": "userName sw \"a\"",
            "startIndex": 2,
            "count": -3,
            "sortBy": "userName"
        });
        let r = from_search(&body, users(), &cfg).unwrap();
        assert_eq!((r.query.start_index, r.query.count), (2, 0));
        assert!(r.query.filter.is_some());
        let e = from_search(&json!({"filter": "x"}), users(), &cfg).unwrap_err();
        assert_eq!(e.scim_type(), Some(ScimType::InvalidSyntax));
        let e = from_search(
            &json!({"schemas": [SEARCH_REQUEST], "count": "many"}),
            users(),
            &cfg,
        )
        .unwrap_err();
        assert_eq!(e.scim_type(), Some(ScimType::InvalidValue));
        let e = from_search(
            &json!({"schemas": [SEARCH_REQUEST], "filter": 3}),
            users(),
            &cfg,
        )
        .unwrap_err();
        assert_eq!(e.scim_type(), Some(ScimType::InvalidValue));
    }
}

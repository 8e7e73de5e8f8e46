//! A super tenant's routing rules: which child tenants each user and group
//! goes to. Pure (no I/O): the store keeps the rules (`routing_policies`)
//! and applies what this decides.
//!
//! A rule names a child tenant (by slug) and a condition:
//! - a group selector (`{"displayName": ...}`, `{"externalId": ...}` or
//!   `{"id": ...}`, matched as role mappings match): the group's members
//!   go to the child, and the group itself is copied there with the
//!   members routed there;
//! - or a SCIM filter over the user (RFC 7644 §3.4.2.2), evaluated with
//!   the `scim` crate's evaluator on the user's document with its groups
//!   (`groups.display eq "Acme Staff"` works).
//!
//! A user goes to every child some rule routes it to (one-to-many); the
//! ids of the rules that did are kept as the reason.
//!
//! ```json
//! {"rules": [
//!   {"id": "acme-staff", "child": "acme", "group": {"displayName": "Acme Staff"}},
//!   {"id": "globex-mail", "child": "globex", "filter": "emails.value ew \"@globex.example\""}
//! ]}
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};

use roles::{GroupFacts, GroupMatch};
use scim::filter::Filter;
use scim::schemas::ResourceSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Rules one super tenant may have at most.
pub const MAX_RULES: usize = 1000;
/// The longest rule id.
pub const MAX_RULE_ID: usize = 64;

/// One rule as written (the wire and stored form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSpec {
    /// The rule's id: 1 to 64 of `a-z`, `0-9`, `-`, `_`; unique.
    pub id: String,
    /// The child tenant's slug.
    pub child: String,
    /// Route the members of this group (and the group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupMatch>,
    /// Route the users this SCIM filter matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Why a set of rules was refused; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RoutingError(pub String);

/// What a rule tests.
#[derive(Debug, Clone)]
enum Condition {
    Group(GroupMatch),
    Filter(Filter),
}

#[derive(Debug, Clone)]
struct Rule {
    id: String,
    child: String,
    condition: Condition,
}

/// A validated set of rules, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

/// Where one user goes: child slug -> ids of the rules that route it there.
pub type Routes = BTreeMap<String, Vec<String>>;

impl Rules {
    /// Validates `specs`: ids well formed and unique, a child named, exactly
    /// one condition each, filters that parse and fit the User schema.
    pub fn parse(specs: &[RuleSpec]) -> Result<Rules, RoutingError> {
        if specs.len() > MAX_RULES {
            return Err(RoutingError(format!(
                "at most {MAX_RULES} routing rules (got {})",
                specs.len()
            )));
        }
        let mut seen = HashSet::new();
        let mut rules = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let at = || format!("rule {} ({:?})", i + 1, spec.id);
            let id_ok = !spec.id.is_empty()
                && spec.id.len() <= MAX_RULE_ID
                && spec.id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !id_ok {
                return Err(RoutingError(format!(
                    "{}: an id is 1 to {MAX_RULE_ID} of a-z, 0-9, '-' and '_'",
                    at()
                )));
            }
            if !seen.insert(spec.id.as_str()) {
                return Err(RoutingError(format!("{}: the id is used twice", at())));
            }
            if spec.child.trim().is_empty() {
                return Err(RoutingError(format!("{}: name the child tenant", at())));
            }
            let condition = match (&spec.group, &spec.filter) {
                (Some(group), None) => {
                    if group.value().trim().is_empty() {
                        return Err(RoutingError(format!(
                            "{}: the group's {} must not be empty",
                            at(),
                            group.attribute()
                        )));
                    }
                    Condition::Group(group.clone())
                }
                (None, Some(text)) => {
                    let filter = scim::filter::parse(text)
                        .map_err(|e| RoutingError(format!("{}: filter: {e}", at())))?;
                    scim::filter::check(&filter, ResourceSchema::user())
                        .map_err(|e| RoutingError(format!("{}: filter: {e}", at())))?;
                    Condition::Filter(filter)
                }
                _ => {
                    return Err(RoutingError(format!(
                        "{}: give either a group or a filter",
                        at()
                    )));
                }
            };
            rules.push(Rule {
                id: spec.id.clone(),
                child: spec.child.clone(),
                condition,
            });
        }
        Ok(Rules { rules })
    }

    /// The child slugs the rules name, each once.
    pub fn children(&self) -> BTreeSet<&str> {
        self.rules.iter().map(|r| r.child.as_str()).collect()
    }

    /// Where a user goes: `user` is its document, `groups` the groups it
    /// belongs to directly.
    pub fn route_user(&self, user: &Value, groups: &[GroupFacts]) -> Routes {
        let mut out = Routes::new();
        let mut with_groups: Option<Value> = None;
        for rule in &self.rules {
            let hit = match &rule.condition {
                Condition::Group(m) => groups.iter().any(|g| m.matches(g)),
                Condition::Filter(f) => {
                    let doc = with_groups.get_or_insert_with(|| document_with_groups(user, groups));
                    scim::filter::matches(f, doc, ResourceSchema::user())
                }
            };
            if hit {
                out.entry(rule.child.clone())
                    .or_default()
                    .push(rule.id.clone());
            }
        }
        out
    }

    /// The children a group itself is copied into: those of the group rules
    /// that select it.
    pub fn route_group(&self, group: &GroupFacts) -> Routes {
        let mut out = Routes::new();
        for rule in &self.rules {
            if let Condition::Group(m) = &rule.condition
                && m.matches(group)
            {
                out.entry(rule.child.clone())
                    .or_default()
                    .push(rule.id.clone());
            }
        }
        out
    }
}

/// The user's document with `groups` filled in (the store keeps
/// memberships apart from documents), so filters can test them.
fn document_with_groups(user: &Value, groups: &[GroupFacts]) -> Value {
    let mut doc = user.clone();
    if let Some(obj) = doc.as_object_mut() {
        let list: Vec<Value> = groups
            .iter()
            .map(|g| json!({"value": g.id, "display": g.display_name}))
            .collect();
        obj.insert("groups".into(), Value::Array(list));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, child: &str, group: Option<GroupMatch>, filter: Option<&str>) -> RuleSpec {
        RuleSpec {
            id: id.into(),
            child: child.into(),
            group,
            filter: filter.map(Into::into),
        }
    }

    fn group(id: &str, name: &str) -> GroupFacts {
        GroupFacts {
            id: id.into(),
            external_id: None,
            display_name: name.into(),
        }
    }

    fn rules() -> Rules {
        Rules::parse(&[
            spec("acme-staff", "acme", Some(GroupMatch::DisplayName("Acme Staff".into())), None),
            spec(
                "acme-org",
                "acme",
                None,
                Some(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization eq "Acme""#),
            ),
            spec("globex-mail", "globex", None, Some(r#"emails.value ew "@globex.example""#)),
            spec("initech-groups", "initech", None, Some(r#"groups.display eq "Initech""#)),
        ])
        .unwrap_or_else(|e| panic!("valid rules: {e}"))
    }

    #[test]
    fn a_user_goes_to_every_child_a_rule_routes_it_to_with_the_reasons() {
        let user = json!({
            "userName": "ann@globex.example",
            "emails": [{"value": "ann@globex.example", "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"organization": "acme"},
        });
        let routes =
            rules().route_user(&user, &[group("g1", "ACME staff"), group("g2", "Initech")]);
        assert_eq!(
            routes,
            Routes::from([
                (
                    "acme".to_owned(),
                    vec!["acme-staff".to_owned(), "acme-org".to_owned()]
                ),
                ("globex".to_owned(), vec!["globex-mail".to_owned()]),
                ("initech".to_owned(), vec!["initech-groups".to_owned()]),
            ])
        );
        let nobody = json!({"userName": "bob@example.com"});
        assert!(rules().route_user(&nobody, &[]).is_empty());
    }

    #[test]
    fn a_group_goes_where_group_rules_send_it() {
        let r = rules();
        assert_eq!(
            r.route_group(&group("g1", "acme staff")),
            Routes::from([("acme".to_owned(), vec!["acme-staff".to_owned()])])
        );
        // Filter rules route users, not groups.
        assert!(r.route_group(&group("g2", "Initech")).is_empty());
        assert_eq!(r.children(), BTreeSet::from(["acme", "globex", "initech"]));
    }

    #[test]
    fn bad_rules_are_refused_with_the_rule_named() {
        let bad = |specs: &[RuleSpec], needle: &str| {
            let e = Rules::parse(specs).err().map(|e| e.0).unwrap_or_default();
            assert!(e.contains(needle), "{needle:?} not in {e:?}");
        };
        let g = || Some(GroupMatch::DisplayName("Staff".into()));
        bad(
            &[spec("Bad Id", "acme", g(), None)],
            "rule 1 (\"Bad Id\"): an id is",
        );
        bad(
            &[spec("a", "acme", g(), None), spec("a", "b", g(), None)],
            "rule 2 (\"a\"): the id is used twice",
        );
        bad(&[spec("a", " ", g(), None)], "name the child");
        bad(
            &[spec("a", "acme", None, None)],
            "either a group or a filter",
        );
        bad(
            &[spec("a", "acme", g(), Some("active eq true"))],
            "either a group or a filter",
        );
        bad(
            &[spec("a", "acme", None, Some("userName eq"))],
            "rule 1 (\"a\"): filter:",
        );
        bad(
            &[spec("a", "acme", None, Some("active gt true"))],
            "filter:",
        );
        bad(
            &[spec("a", "acme", Some(GroupMatch::Id(" ".into())), None)],
            "group's id must not be empty",
        );
        let many: Vec<RuleSpec> = (0..=MAX_RULES)
            .map(|i| spec(&format!("r{i}"), "acme", g(), None))
            .collect();
        bad(&many, "at most 1000");
    }

    #[test]
    fn rules_read_back_as_written() {
        let text = r#"{"id":"acme-staff","child":"acme","group":{"displayName":"Acme Staff"}}"#;
        let parsed: RuleSpec = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(serde_json::to_string(&parsed).unwrap_or_default(), text);
        let unknown = r#"{"id":"a","child":"acme","filter":"active eq true","extra":1}"#;
        assert!(serde_json::from_str::<RuleSpec>(unknown).is_err());
    }
}

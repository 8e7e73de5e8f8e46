//! SCIM filter AST → SQL `WHERE`, for the attributes the schema indexes.
//!
//! The contract: for every row, the SQL predicate is true exactly when
//! `scim::filter::matches` is true on the resource as the list renders it
//! for evaluation (document + `id` + `meta` + members/groups). So each
//! translated predicate is two-valued (never SQL NULL, which `NOT` would
//! not negate), compares the `*_norm` columns with literals lower-cased as
//! the evaluator lower-cases, orders strings by code point (the "C"
//! collation on PostgreSQL, BINARY on SQLite), and reproduces the
//! evaluator's quirks (`ne` is `not eq`, `eq null` is `not pr`, a string
//! literal `"True"` matches a boolean). Whatever this module does not
//! translate with certainty — other attributes, number literals on string
//! attributes, `co` on a timestamp — it leaves to the evaluator: AND
//! conjuncts are split so the translatable ones still narrow the scan.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Timelike, Utc};
use scim::filter::{CompValue, CompareOp, Filter};
use scim::{AttrPath, ResourceSchema};
use sea_orm::sea_query::{
    BinOper, DynIden, Expr, ExprTrait, IntoIden, LikeExpr, Query, SelectStatement,
};

use crate::Backend;
use crate::columns::lower;
use crate::entity::{groups, memberships, user_emails, users};

/// Which resource type a list runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Users.
    User,
    /// Groups.
    Group,
}

// Names and URNs come from the schema registry, the one place that knows
// them; this enum adds only the storage side (tables).
impl Kind {
    pub(crate) fn schema(self) -> ResourceSchema<'static> {
        match self {
            Kind::User => ResourceSchema::user(),
            Kind::Group => ResourceSchema::group(),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        &self.schema().resource_type.name
    }

    fn core_urn(self) -> &'static str {
        &self.schema().resource_type.schema
    }

    pub(crate) fn table(self) -> DynIden {
        match self {
            Kind::User => users::Entity.into_iden(),
            Kind::Group => groups::Entity.into_iden(),
        }
    }
}

/// An indexed attribute a filter or sort can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Id,
    ExternalId,
    UserName,
    DisplayName,
    Active,
    Created,
    LastModified,
    /// `emails` / `emails.value` (users).
    Emails,
    /// `members` / `members.value` (groups).
    Members,
    /// `groups` / `groups.value` (users).
    Groups,
}

/// The indexed attribute `path` names on `kind`, if any. Only unqualified
/// paths and paths qualified with the core schema URN qualify: others are
/// looked up elsewhere in the document by the evaluator.
pub(crate) fn target(kind: Kind, path: &AttrPath) -> Option<Target> {
    if let Some(urn) = &path.urn
        && !urn.eq_ignore_ascii_case(kind.core_urn())
    {
        return None;
    }
    let name = path.name.to_ascii_lowercase();
    let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
    let t = match (kind, name.as_str(), sub.as_deref()) {
        (_, "id", None) => Target::Id,
        (_, "externalid", None) => Target::ExternalId,
        (Kind::User, "username", None) => Target::UserName,
        (_, "displayname", None) => Target::DisplayName,
        (Kind::User, "active", None) => Target::Active,
        (_, "meta", Some("created")) => Target::Created,
        (_, "meta", Some("lastmodified")) => Target::LastModified,
        (Kind::User, "emails", None | Some("value")) => Target::Emails,
        (Kind::Group, "members", None | Some("value")) => Target::Members,
        (Kind::User, "groups", None | Some("value")) => Target::Groups,
        _ => return None,
    };
    Some(t)
}

/// A filter split into SQL conjuncts and what the evaluator must check.
pub(crate) struct Split {
    pub sql: Vec<Expr>,
    pub residual: Option<Filter>,
}

/// Splits `filter`'s top-level AND conjuncts into translated SQL and a
/// residual filter (the AND of the rest).
pub(crate) fn split(filter: &Filter, kind: Kind, backend: Backend) -> Split {
    let mut conjuncts = Vec::new();
    flatten_and(filter, &mut conjuncts);
    let tr = Translator { kind, backend };
    let mut sql = Vec::new();
    let mut rest: Vec<Filter> = Vec::new();
    for c in conjuncts {
        match tr.filter(c) {
            Some(e) => sql.push(e),
            None => rest.push(c.clone()),
        }
    }
    let residual = rest
        .into_iter()
        .reduce(|a, b| Filter::And(Box::new(a), Box::new(b)));
    Split { sql, residual }
}

fn flatten_and<'f>(filter: &'f Filter, out: &mut Vec<&'f Filter>) {
    // Iterative, so a long chain of `and`s costs no native stack.
    let mut stack = vec![filter];
    while let Some(f) = stack.pop() {
        match f {
            Filter::And(a, b) => {
                stack.push(b);
                stack.push(a);
            }
            other => out.push(other),
        }
    }
}

/// True when `filter` names the top-level attribute `name` anywhere.
pub(crate) fn mentions(filter: &Filter, name: &str) -> bool {
    let mut stack = vec![filter];
    while let Some(f) = stack.pop() {
        match f {
            Filter::Compare { path, .. } | Filter::Present(path) => {
                if path.name.eq_ignore_ascii_case(name) {
                    return true;
                }
            }
            Filter::ValuePath { path, filter } => {
                if path.name.eq_ignore_ascii_case(name) {
                    return true;
                }
                stack.push(filter);
            }
            Filter::And(a, b) | Filter::Or(a, b) => {
                stack.push(a);
                stack.push(b);
            }
            Filter::Not(inner) => stack.push(inner),
        }
    }
    false
}

fn truth() -> Expr {
    Expr::cust("(1 = 1)")
}

fn falsity() -> Expr {
    Expr::cust("(1 = 0)")
}

/// Escapes a literal for `LIKE ... ESCAPE '!'`.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

/// Escapes a literal for SQLite's case-sensitive `GLOB`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

/// The evaluator's reading of a dateTime literal: RFC 3339, or without an
/// offset as UTC.
fn parse_instant(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok().or_else(|| {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|naive| naive.and_utc().fixed_offset())
    })
}

/// A column of the outer table.
fn outer(kind: Kind, col: DynIden) -> Expr {
    Expr::col((kind.table(), col))
}

/// Which rows of a child table an `EXISTS` looks at.
#[derive(Clone, Copy)]
enum Child {
    /// `user_emails` rows of the user.
    Emails,
    /// `memberships` rows of the group (its members).
    Members,
    /// `memberships` rows naming the user (its groups).
    Groups,
}

struct Translator {
    kind: Kind,
    backend: Backend,
}

impl Translator {
    fn filter(&self, f: &Filter) -> Option<Expr> {
        match f {
            Filter::Compare { path, op, value } => {
                let t = target(self.kind, path)?;
                self.compare(t, path, *op, value)
            }
            Filter::Present(path) => {
                let t = target(self.kind, path)?;
                self.present(t, path)
            }
            Filter::And(a, b) => Some(self.filter(a)?.and(self.filter(b)?)),
            Filter::Or(a, b) => Some(self.filter(a)?.or(self.filter(b)?)),
            Filter::Not(inner) => Some(self.filter(inner)?.not()),
            Filter::ValuePath { path, filter } => self.value_path(path, filter),
        }
    }

    fn compare(&self, t: Target, path: &AttrPath, op: CompareOp, lit: &CompValue) -> Option<Expr> {
        match (op, lit) {
            (CompareOp::Ne, _) => {
                return Some(self.compare(t, path, CompareOp::Eq, lit)?.not());
            }
            (CompareOp::Eq, CompValue::Null) => return Some(self.present(t, path)?.not()),
            (_, CompValue::Null) => return Some(falsity()),
            _ => {}
        }
        match t {
            Target::Id => self.string(outer(self.kind, col_id(self.kind)), op, lit, true),
            Target::ExternalId => {
                self.string(outer(self.kind, col_external_id(self.kind)), op, lit, true)
            }
            Target::UserName => self.string(
                outer(self.kind, users::Column::UserNameNorm.into_iden()),
                op,
                lit,
                false,
            ),
            Target::DisplayName => self.string(
                outer(self.kind, col_display_name_norm(self.kind)),
                op,
                lit,
                false,
            ),
            Target::Active => Some(self.active(op, lit)),
            Target::Created => self.instant(col_created(self.kind), op, lit),
            Target::LastModified => self.instant(col_updated(self.kind), op, lit),
            Target::Emails => {
                let inner = self.child_value(Child::Emails, op, lit)?;
                Some(self.exists(Child::Emails, Some(inner)))
            }
            Target::Members => {
                let inner = self.child_value(Child::Members, op, lit)?;
                Some(self.exists(Child::Members, Some(inner)))
            }
            Target::Groups => {
                let inner = self.child_value(Child::Groups, op, lit)?;
                Some(self.exists(Child::Groups, Some(inner)))
            }
        }
    }

    /// RFC 7644 `pr`: present and not empty.
    fn present(&self, t: Target, path: &AttrPath) -> Option<Expr> {
        Some(match t {
            Target::Id | Target::Created | Target::LastModified => truth(),
            Target::UserName => {
                non_empty(outer(self.kind, users::Column::UserNameNorm.into_iden()))
            }
            Target::ExternalId => non_empty(outer(self.kind, col_external_id(self.kind))),
            Target::DisplayName => non_empty(outer(self.kind, col_display_name_norm(self.kind))),
            Target::Active => outer(self.kind, users::Column::Active.into_iden()).is_not_null(),
            Target::Emails => {
                // `emails pr` asks whether any element has any present
                // sub-attribute (a `type` alone counts): not indexed.
                path.sub.as_ref()?;
                self.exists(
                    Child::Emails,
                    Some(non_empty(Expr::col((
                        user_emails::Entity,
                        user_emails::Column::ValueNorm,
                    )))),
                )
            }
            // Every rendered member / group reference has a non-empty value.
            Target::Members => self.exists(Child::Members, None),
            Target::Groups => self.exists(Child::Groups, None),
        })
    }

    /// A string attribute against a literal. `exact` attributes compare
    /// the raw column; the others a `*_norm` column with the literal
    /// lower-cased.
    fn string(&self, col: Expr, op: CompareOp, lit: &CompValue, exact: bool) -> Option<Expr> {
        // Numbers and booleans against strings follow evaluator rules
        // (numeric parsing, "True") that SQL would not reproduce.
        let CompValue::String(s) = lit else {
            return None;
        };
        let value = if exact { s.clone() } else { lower(s) };
        let cmp = self.string_op(col.clone(), op, value, exact);
        Some(col.is_not_null().and(cmp))
    }

    fn string_op(&self, col: Expr, op: CompareOp, value: String, exact: bool) -> Expr {
        let glob = exact && self.backend == Backend::Sqlite;
        let pattern = |prefix: bool, suffix: bool| -> Expr {
            if glob {
                // SQLite's LIKE ignores ASCII case; GLOB does not.
                let p = format!(
                    "{}{}{}",
                    if prefix { "*" } else { "" },
                    glob_escape(&value),
                    if suffix { "*" } else { "" }
                );
                col.clone().binary(BinOper::Custom("GLOB"), Expr::val(p))
            } else {
                let p = format!(
                    "{}{}{}",
                    if prefix { "%" } else { "" },
                    like_escape(&value),
                    if suffix { "%" } else { "" }
                );
                col.clone().like(LikeExpr::new(p).escape('!'))
            }
        };
        match op {
            CompareOp::Eq => col.eq(value.clone()),
            CompareOp::Ne => col.ne(value.clone()),
            CompareOp::Gt => col.gt(value.clone()),
            CompareOp::Ge => col.gte(value.clone()),
            CompareOp::Lt => col.lt(value.clone()),
            CompareOp::Le => col.lte(value.clone()),
            CompareOp::Co => pattern(true, true),
            CompareOp::Sw => pattern(false, true),
            CompareOp::Ew => pattern(true, false),
        }
    }

    /// `active`: a boolean column. The evaluator matches only `eq` with a
    /// boolean literal or a string reading as one ("true", "False").
    fn active(&self, op: CompareOp, lit: &CompValue) -> Expr {
        let wanted = match lit {
            CompValue::Boolean(b) => Some(*b),
            CompValue::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            CompValue::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        };
        match (op, wanted) {
            (CompareOp::Eq, Some(b)) => {
                let col = outer(self.kind, users::Column::Active.into_iden());
                col.clone().is_not_null().and(col.eq(b))
            }
            _ => falsity(),
        }
    }

    /// `meta.created` / `meta.lastModified` against a dateTime literal.
    fn instant(&self, col: DynIden, op: CompareOp, lit: &CompValue) -> Option<Expr> {
        if !matches!(
            op,
            CompareOp::Eq | CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        ) {
            // `co`/`sw`/`ew` compare the rendered text: evaluator.
            return None;
        }
        let CompValue::String(s) = lit else {
            return None;
        };
        let Some(at) = parse_instant(s) else {
            // A literal that is not a dateTime never matches.
            return Some(falsity());
        };
        let at = at.with_timezone(&Utc);
        // Outside what both engines store exactly (microseconds, four-digit
        // years) the evaluator decides.
        if at.nanosecond() % 1000 != 0 || !(1..=9999).contains(&at.year()) {
            return None;
        }
        let c = outer(self.kind, col);
        Some(match op {
            CompareOp::Eq => c.eq(at),
            CompareOp::Gt => c.gt(at),
            CompareOp::Ge => c.gte(at),
            CompareOp::Lt => c.lt(at),
            _ => c.lte(at),
        })
    }

    /// The comparison on a child row's value column (emails' value, a
    /// member id, a group id). Member and group ids are ids this store
    /// generated (lower-case), compared as the evaluator does for these
    /// case-insensitive sub-attributes: with the literal lower-cased.
    fn child_value(&self, child: Child, op: CompareOp, lit: &CompValue) -> Option<Expr> {
        let col = child_value_col(child);
        self.string(col, op, lit, false)
    }

    fn exists(&self, child: Child, cond: Option<Expr>) -> Expr {
        let mut q: SelectStatement = Query::select();
        q.expr(Expr::val(1));
        match child {
            Child::Emails => {
                q.from(user_emails::Entity)
                    .and_where(
                        Expr::col((user_emails::Entity, user_emails::Column::TenantId))
                            .equals((users::Entity, users::Column::TenantId)),
                    )
                    .and_where(
                        Expr::col((user_emails::Entity, user_emails::Column::UserId))
                            .equals((users::Entity, users::Column::Id)),
                    );
            }
            Child::Members => {
                q.from(memberships::Entity)
                    .and_where(
                        Expr::col((memberships::Entity, memberships::Column::TenantId))
                            .equals((groups::Entity, groups::Column::TenantId)),
                    )
                    .and_where(
                        Expr::col((memberships::Entity, memberships::Column::GroupId))
                            .equals((groups::Entity, groups::Column::Id)),
                    );
            }
            Child::Groups => {
                q.from(memberships::Entity)
                    .and_where(
                        Expr::col((memberships::Entity, memberships::Column::TenantId))
                            .equals((users::Entity, users::Column::TenantId)),
                    )
                    .and_where(
                        Expr::col((memberships::Entity, memberships::Column::MemberId))
                            .equals((users::Entity, users::Column::Id)),
                    );
            }
        }
        if let Some(c) = cond {
            q.and_where(c);
        }
        Expr::exists(q)
    }

    /// `attr[filter]`: an element-wise filter, translated when every path
    /// in it is a sub-attribute this store keeps per element.
    fn value_path(&self, path: &AttrPath, filter: &Filter) -> Option<Expr> {
        if path.sub.is_some() {
            return None;
        }
        let child = match target(self.kind, path)? {
            Target::Emails => Child::Emails,
            Target::Members => Child::Members,
            Target::Groups => Child::Groups,
            _ => return None,
        };
        let cond = self.element(child, filter)?;
        Some(self.exists(child, Some(cond)))
    }

    /// A filter over one element (paths relative to it).
    fn element(&self, child: Child, f: &Filter) -> Option<Expr> {
        match f {
            Filter::And(a, b) => Some(self.element(child, a)?.and(self.element(child, b)?)),
            Filter::Or(a, b) => Some(self.element(child, a)?.or(self.element(child, b)?)),
            Filter::Not(inner) => Some(self.element(child, inner)?.not()),
            Filter::ValuePath { .. } => None,
            Filter::Present(p) => match element_field(child, p)? {
                Field::Value => Some(non_empty(child_value_col(child))),
                // Every member row has a type.
                Field::Type => Some(truth()),
            },
            Filter::Compare { path, op, value } => {
                let field = element_field(child, path)?;
                match (op, value) {
                    (CompareOp::Ne, _) => Some(
                        self.element(
                            child,
                            &Filter::Compare {
                                path: path.clone(),
                                op: CompareOp::Eq,
                                value: value.clone(),
                            },
                        )?
                        .not(),
                    ),
                    (CompareOp::Eq, CompValue::Null) => {
                        Some(self.element(child, &Filter::Present(path.clone()))?.not())
                    }
                    (_, CompValue::Null) => Some(falsity()),
                    _ => match field {
                        Field::Value => self.child_value(child, *op, value),
                        Field::Type => member_type(*op, value),
                    },
                }
            }
        }
    }
}

/// A per-element sub-attribute the store keeps.
enum Field {
    Value,
    Type,
}

fn element_field(child: Child, path: &AttrPath) -> Option<Field> {
    if path.urn.is_some() || path.sub.is_some() {
        return None;
    }
    if path.name.eq_ignore_ascii_case("value") {
        Some(Field::Value)
    } else if path.name.eq_ignore_ascii_case("type") && matches!(child, Child::Members) {
        Some(Field::Type)
    } else {
        None
    }
}

/// `members[type eq "user"]`: the stored type is "User" or "Group", and
/// `type` is case-insensitive.
fn member_type(op: CompareOp, lit: &CompValue) -> Option<Expr> {
    let CompValue::String(s) = lit else {
        return None;
    };
    if op != CompareOp::Eq {
        return None;
    }
    let col = Expr::col((memberships::Entity, memberships::Column::MemberType));
    Some(match lower(s).as_str() {
        "user" => col.eq("User"),
        "group" => col.eq("Group"),
        _ => falsity(),
    })
}

fn child_value_col(child: Child) -> Expr {
    match child {
        Child::Emails => Expr::col((user_emails::Entity, user_emails::Column::ValueNorm)),
        Child::Members => Expr::col((memberships::Entity, memberships::Column::MemberId)),
        Child::Groups => Expr::col((memberships::Entity, memberships::Column::GroupId)),
    }
}

fn non_empty(col: Expr) -> Expr {
    col.clone().is_not_null().and(col.ne(""))
}

pub(crate) fn col_id(kind: Kind) -> DynIden {
    match kind {
        Kind::User => users::Column::Id.into_iden(),
        Kind::Group => groups::Column::Id.into_iden(),
    }
}

pub(crate) fn col_tenant(kind: Kind) -> DynIden {
    match kind {
        Kind::User => users::Column::TenantId.into_iden(),
        Kind::Group => groups::Column::TenantId.into_iden(),
    }
}

pub(crate) fn col_external_id(kind: Kind) -> DynIden {
    match kind {
        Kind::User => users::Column::ExternalId.into_iden(),
        Kind::Group => groups::Column::ExternalId.into_iden(),
    }
}

pub(crate) fn col_display_name_norm(kind: Kind) -> DynIden {
    match kind {
        Kind::User => users::Column::DisplayNameNorm.into_iden(),
        Kind::Group => groups::Column::DisplayNameNorm.into_iden(),
    }
}

pub(crate) fn col_created(kind: Kind) -> DynIden {
    match kind {
        Kind::User => users::Column::CreatedAt.into_iden(),
        Kind::Group => groups::Column::CreatedAt.into_iden(),
    }
}

pub(crate) fn col_updated(kind: Kind) -> DynIden {
    match kind {
        Kind::User => users::Column::UpdatedAt.into_iden(),
        Kind::Group => groups::Column::UpdatedAt.into_iden(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(like_escape("a%b_c!d"), "a!%b!_c!!d");
        assert_eq!(glob_escape("a*b?c[d]"), "a[*]b[?]c[[]d]");
    }

    #[test]
    fn targets() {
        let p = |s: &str| AttrPath::parse(s).unwrap();
        assert_eq!(target(Kind::User, &p("USERNAME")), Some(Target::UserName));
        assert_eq!(
            target(
                Kind::User,
                &p("urn:ietf:params:scim:schemas:core:2.0:User:userName")
            ),
            Some(Target::UserName)
        );
        assert_eq!(
            target(
                Kind::User,
                &p("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName")
            ),
            None
        );
        assert_eq!(target(Kind::Group, &p("userName")), None);
        assert_eq!(target(Kind::User, &p("emails.type")), None);
        assert_eq!(
            target(Kind::User, &p("meta.created")),
            Some(Target::Created)
        );
        assert_eq!(
            target(Kind::Group, &p("members.value")),
            Some(Target::Members)
        );
    }
}

//! Listing users and groups (RFC 7644 §3.4.2): filter, sort, page.
//!
//! The fast path runs entirely in SQL: the translated filter, `ORDER BY`
//! an indexed attribute (ties by id), `LIMIT/OFFSET`, and a `COUNT`. When
//! part of the filter is not translatable, or the sort attribute is not a
//! column, the rows matching the translated part are scanned in batches
//! (keyset on id) and finished in memory with `scim::filter::matches` —
//! but only if there are at most `scan_limit` of them; otherwise the
//! request is refused with `TooMany`, so no query costs more than that.

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use scim::AttrPath;
use scim::filter::Filter;
use scim::meta::Meta;
use sea_orm::sea_query::{
    Asterisk, Condition, Expr, ExprTrait, Func, NullOrdering, Order, Query, SelectStatement,
};
use sea_orm::{ConnectionTrait, QueryResult};
use serde_json::{Map, Value, json};

use crate::columns::{get_ci, lower};
use crate::db::db;
use crate::directory::{load_members, parse_document, version};
use crate::entity::{groups, users};
use crate::translate::{
    self, Kind, Target, col_created, col_display_name_norm, col_external_id, col_id, col_tenant,
    col_updated,
};
use crate::{
    Backend, GroupRef, ListQuery, Page, Resource, Result, StoreError, TenantStore, UserExtras,
};

/// Rows fetched per round trip when scanning for in-memory evaluation.
const BATCH: u64 = 500;

/// One row as the list reads it.
struct Row {
    id: String,
    document: String,
    version: i64,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    user_name_norm: Option<String>,
    display_name_norm: Option<String>,
    external_id: Option<String>,
    /// A user's groups as JSON `[[id, displayName, norm], ...]`, when asked.
    groups_json: Option<String>,
    /// A user's stored effective roles (JSON), when asked and stored.
    roles_json: Option<String>,
}

/// How results are ordered.
#[derive(Clone)]
enum Sort {
    /// By an indexed column, in SQL or over rows in memory alike.
    Column(Target),
    /// By a document attribute, in memory.
    Document(AttrPath),
}

fn sort_of(kind: Kind, q: &ListQuery) -> Sort {
    match &q.sort_by {
        None => Sort::Column(Target::Created),
        Some(path) => match translate::target(kind, path) {
            Some(
                t @ (Target::Id
                | Target::UserName
                | Target::DisplayName
                | Target::ExternalId
                | Target::Created
                | Target::LastModified),
            ) => Sort::Column(t),
            _ => Sort::Document(path.clone()),
        },
    }
}

pub(crate) async fn list(store: &TenantStore, kind: Kind, q: &ListQuery) -> Result<Page> {
    let (sql, residual) = match &q.filter {
        Some(f) => {
            let s = translate::split(f, kind, store.inner.backend);
            (s.sql, s.residual)
        }
        None => (Vec::new(), None),
    };
    let mut cond = Condition::all()
        .add(Expr::col((kind.table(), col_tenant(kind))).eq(store.tenant.id.to_string()));
    for e in sql {
        cond = cond.add(e);
    }
    let sort = sort_of(kind, q);
    let offset = Ord::max(q.start_index, 1) - 1;

    // Only the page read in SQL brings the extras along; a scanned one
    // leaves them to the caller.
    let mut extras = UserExtras::default();
    let (total, rows) = match (&residual, &sort) {
        (None, Sort::Column(target)) if q.count > 0 => {
            let mut select = select_rows(kind);
            if kind == Kind::User {
                extras = q.user_extras;
                add_user_extras(&mut select, store.inner.backend, extras);
            }
            select.cond_where(cond.clone());
            order_sql(&mut select, kind, *target, q.descending);
            let rows = fetch_page(store, kind, &select, q.count, offset, extras).await?;
            // A page that is neither empty nor full is the last one, so it
            // tells the total by itself: the `userName eq` lookups IdPs send
            // before every write cost one query, not two.
            let total = if !rows.is_empty() && (rows.len() as u64) < q.count {
                offset + rows.len() as u64
            } else if rows.is_empty() && offset == 0 {
                0
            } else {
                count(store, kind, cond).await?
            };
            (total, rows)
        }
        (None, Sort::Column(_)) => (count(store, kind, cond).await?, Vec::new()),
        _ => {
            let candidates = count(store, kind, cond.clone()).await?;
            let limit = store.inner.options.scan_limit;
            if candidates > limit as u64 {
                return Err(StoreError::TooMany(format!(
                    "this query would have to examine {candidates} resources in memory \
                     (the limit is {limit}); filter on an indexed attribute (id, externalId, \
                     userName, displayName, emails, active, meta.created, \
                     meta.lastModified, members) or sort by one"
                )));
            }
            let mut matched = scan(store, kind, cond, residual.as_ref()).await?;
            sort_memory(kind, &mut matched, &sort, q.descending);
            let total = matched.len() as u64;
            let page: Vec<Row> = if q.count == 0 {
                Vec::new()
            } else {
                matched
                    .into_iter()
                    .map(|(row, _)| row)
                    .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                    .take(usize::try_from(q.count).unwrap_or(usize::MAX))
                    .collect()
            };
            (total, page)
        }
    };

    let mut members = if kind == Kind::Group && q.with_members && !rows.is_empty() {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        load_members(store, &store.inner.conn, &ids)
            .await
            .map_err(db)?
    } else {
        HashMap::new()
    };
    let mut groups = extras.groups.then(HashMap::new);
    let mut roles = extras.roles.then(HashMap::new);
    for r in &rows {
        if let (Some(map), Some(text)) = (groups.as_mut(), r.groups_json.as_deref()) {
            map.insert(r.id.clone(), parse_groups(text, &r.id)?);
        }
        if let (Some(map), Some(text)) = (roles.as_mut(), r.roles_json.as_deref()) {
            map.insert(r.id.clone(), crate::roles::parse_effective(text, &r.id)?);
        }
    }
    let resources = rows
        .into_iter()
        .map(|r| {
            let m = if kind == Kind::Group && q.with_members {
                Some(members.remove(&r.id).unwrap_or_default())
            } else {
                None
            };
            to_resource(kind, r, m)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page {
        total,
        resources,
        groups,
        roles,
    })
}

/// Adds a user's groups and stored roles to `select` as correlated
/// sub-selects (JSON text), each answered from an index keyed by the user
/// (memberships' member-first index, user_roles' key).
fn add_user_extras(select: &mut SelectStatement, backend: Backend, extras: UserExtras) {
    if extras.groups {
        let agg = match backend {
            Backend::Postgres => {
                r#"json_agg(json_build_array(g."id", g."display_name", g."display_name_norm"))::text"#
            }
            Backend::Sqlite => {
                r#"json_group_array(json_array(g."id", g."display_name", g."display_name_norm"))"#
            }
        };
        select.expr_as(
            Expr::cust(format!(
                r#"(SELECT {agg} FROM "memberships" m JOIN "groups" g ON g."tenant_id" = m."tenant_id" AND g."id" = m."group_id" WHERE m."tenant_id" = "users"."tenant_id" AND m."member_id" = "users"."id")"#
            )),
            "groups_json",
        );
    }
    if extras.roles {
        select.expr_as(
            Expr::cust(
                r#"(SELECT r."effective" FROM "user_roles" r WHERE r."tenant_id" = "users"."tenant_id" AND r."user_id" = "users"."id")"#,
            ),
            "roles_json",
        );
    }
}

/// The groups (an entry per user found, empty when none) and stored roles
/// (users without any are absent) of `user_ids`, as far as `extras` asks:
/// one statement per batch of users, whatever is asked.
pub(crate) async fn user_extras(
    store: &TenantStore,
    user_ids: &[String],
    extras: UserExtras,
) -> Result<(
    HashMap<String, Vec<GroupRef>>,
    HashMap<String, ::roles::Effective>,
)> {
    let (mut groups, mut roles) = (HashMap::new(), HashMap::new());
    if extras == UserExtras::default() {
        return Ok((groups, roles));
    }
    for chunk in user_ids.chunks(usize::try_from(BATCH).unwrap_or(500)) {
        let mut select = Query::select();
        select
            .from(users::Entity)
            .column((users::Entity, users::Column::Id))
            .and_where(
                Expr::col((users::Entity, users::Column::TenantId)).eq(store.tenant.id.to_string()),
            )
            .and_where(Expr::col((users::Entity, users::Column::Id)).is_in(chunk.iter().cloned()));
        add_user_extras(&mut select, store.inner.backend, extras);
        for r in store.inner.conn.query_all(&select).await.map_err(db)? {
            let id: String = r.try_get("", "id").map_err(db)?;
            if extras.groups {
                let text: Option<String> = r.try_get("", "groups_json").map_err(db)?;
                let refs = match text {
                    Some(text) => parse_groups(&text, &id)?,
                    None => Vec::new(),
                };
                groups.insert(id.clone(), refs);
            }
            if extras.roles {
                let text: Option<String> = r.try_get("", "roles_json").map_err(db)?;
                if let Some(text) = text {
                    let effective = crate::roles::parse_effective(&text, &id)?;
                    roles.insert(id, effective);
                }
            }
        }
    }
    Ok((groups, roles))
}

/// A user's groups from [`add_user_extras`]'s JSON, in `groups` order.
fn parse_groups(text: &str, user_id: &str) -> Result<Vec<GroupRef>> {
    let rows: Vec<(String, String, String)> = serde_json::from_str(text).map_err(|e| {
        StoreError::Internal(format!("groups of user {user_id} read as {text:?}: {e}"))
    })?;
    Ok(crate::directory::in_display_order(
        rows.into_iter()
            .map(|(id, display, norm)| (norm, GroupRef { id, display }))
            .collect(),
    ))
}

fn to_resource(kind: Kind, r: Row, members: Option<Vec<scim::patch::Member>>) -> Result<Resource> {
    let what = format!("{} {}", kind.name(), r.id);
    Ok(Resource {
        document: parse_document(&r.document, &what)?,
        version: version(r.version, &what)?,
        id: r.id,
        created: r.created,
        last_modified: r.updated,
        members,
        routed: Vec::new(),
    })
}

async fn count(store: &TenantStore, kind: Kind, cond: Condition) -> Result<u64> {
    let q = Query::select()
        .expr_as(Func::count(Expr::col(Asterisk)), "n")
        .from(kind.table())
        .cond_where(cond)
        .to_owned();
    let row = store.inner.conn.query_one(&q).await.map_err(db)?;
    let n: i64 = match row {
        Some(r) => r.try_get("", "n").map_err(db)?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

fn select_rows(kind: Kind) -> SelectStatement {
    let t = kind.table();
    let mut q = Query::select();
    q.from(t.clone())
        .column((t.clone(), col_id(kind)))
        .column((t.clone(), doc_col(kind)))
        .column((t.clone(), version_col(kind)))
        .column((t.clone(), col_created(kind)))
        .column((t.clone(), col_updated(kind)))
        .column((t.clone(), col_display_name_norm(kind)))
        .column((t.clone(), col_external_id(kind)));
    if kind == Kind::User {
        q.column((t, users::Column::UserNameNorm));
    }
    q
}

fn doc_col(kind: Kind) -> sea_orm::sea_query::DynIden {
    use sea_orm::sea_query::IntoIden;
    match kind {
        Kind::User => users::Column::Document.into_iden(),
        Kind::Group => groups::Column::Document.into_iden(),
    }
}

fn version_col(kind: Kind) -> sea_orm::sea_query::DynIden {
    use sea_orm::sea_query::IntoIden;
    match kind {
        Kind::User => users::Column::Version.into_iden(),
        Kind::Group => groups::Column::Version.into_iden(),
    }
}

fn sort_col(kind: Kind, target: Target) -> sea_orm::sea_query::DynIden {
    use sea_orm::sea_query::IntoIden;
    match target {
        Target::UserName if kind == Kind::User => users::Column::UserNameNorm.into_iden(),
        Target::DisplayName => col_display_name_norm(kind),
        Target::ExternalId => col_external_id(kind),
        Target::Created => col_created(kind),
        Target::LastModified => col_updated(kind),
        _ => col_id(kind),
    }
}

/// `ORDER BY` the column, missing values last when ascending (first when
/// descending, i.e. missing sorts as the greatest value), ties by id.
fn order_sql(select: &mut SelectStatement, kind: Kind, target: Target, descending: bool) {
    let t = kind.table();
    let (order, nulls) = if descending {
        (Order::Desc, NullOrdering::First)
    } else {
        (Order::Asc, NullOrdering::Last)
    };
    if target != Target::Id {
        select.order_by_with_nulls((t.clone(), sort_col(kind, target)), order, nulls);
        select.order_by((t, col_id(kind)), Order::Asc);
    } else {
        select.order_by((t, col_id(kind)), order);
    }
}

async fn fetch(store: &TenantStore, kind: Kind, select: &SelectStatement) -> Result<Vec<Row>> {
    let rows = store.inner.conn.query_all(select).await.map_err(db)?;
    rows.iter()
        .map(|r| read_row(kind, r, UserExtras::default()))
        .collect()
}

/// [`fetch`] with `LIMIT`/`OFFSET` written into the SQL as numbers: SQLite
/// re-prepares a statement whenever a parameter its plan depends on is
/// re-bound, and a bound `LIMIT` is such a parameter. The few distinct
/// page sizes IdPs use keep the statement cache small.
async fn fetch_page(
    store: &TenantStore,
    kind: Kind,
    select: &SelectStatement,
    limit: u64,
    offset: u64,
    extras: UserExtras,
) -> Result<Vec<Row>> {
    let conn = &store.inner.conn;
    let mut stmt = conn.get_database_backend().build(select);
    stmt.sql
        .push_str(&format!(" LIMIT {limit} OFFSET {offset}"));
    let rows = conn.query_all_raw(stmt).await.map_err(db)?;
    rows.iter().map(|r| read_row(kind, r, extras)).collect()
}

fn read_row(kind: Kind, r: &QueryResult, extras: UserExtras) -> Result<Row> {
    Ok(Row {
        id: r.try_get("", "id").map_err(db)?,
        document: r.try_get("", "document").map_err(db)?,
        version: r.try_get("", "version").map_err(db)?,
        created: r.try_get("", "created_at").map_err(db)?,
        updated: r.try_get("", "updated_at").map_err(db)?,
        user_name_norm: if kind == Kind::User {
            Some(r.try_get("", "user_name_norm").map_err(db)?)
        } else {
            None
        },
        display_name_norm: r.try_get("", "display_name_norm").map_err(db)?,
        external_id: r.try_get("", "external_id").map_err(db)?,
        groups_json: if extras.groups {
            r.try_get("", "groups_json").map_err(db)?
        } else {
            None
        },
        roles_json: if extras.roles {
            r.try_get("", "roles_json").map_err(db)?
        } else {
            None
        },
    })
}

/// Reads every row matching `cond` (already bounded by the caller) in
/// id-keyed batches and keeps those the residual filter matches, each
/// with the document it was evaluated on.
async fn scan(
    store: &TenantStore,
    kind: Kind,
    cond: Condition,
    residual: Option<&Filter>,
) -> Result<Vec<(Row, Value)>> {
    let schema = kind.schema();
    let related = residual.is_some_and(|f| match kind {
        Kind::User => translate::mentions(f, "groups"),
        Kind::Group => translate::mentions(f, "members"),
    });
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut select = select_rows(kind);
        select.cond_where(cond.clone());
        if let Some(last) = &after {
            select.and_where(Expr::col((kind.table(), col_id(kind))).gt(last.clone()));
        }
        select
            .order_by((kind.table(), col_id(kind)), Order::Asc)
            .limit(BATCH);
        let batch = fetch(store, kind, &select).await?;
        let done = (batch.len() as u64) < BATCH;
        after = batch.last().map(|r| r.id.clone());
        let mut extra = if related {
            related_of(store, kind, &batch).await?
        } else {
            HashMap::new()
        };
        for row in batch {
            let doc = eval_document(kind, &row, extra.remove(&row.id))?;
            if residual.is_none_or(|f| scim::filter::matches(f, &doc, schema)) {
                out.push((row, doc));
            }
        }
        if done || after.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Members (groups) or group references (users) as the evaluator sees
/// them, for one batch.
async fn related_of(
    store: &TenantStore,
    kind: Kind,
    batch: &[Row],
) -> Result<HashMap<String, Value>> {
    let ids: Vec<String> = batch.iter().map(|r| r.id.clone()).collect();
    Ok(match kind {
        Kind::Group => load_members(store, &store.inner.conn, &ids)
            .await
            .map_err(db)?
            .into_iter()
            .map(|(id, ms)| (id, Value::Array(ms.iter().map(|m| m.to_json()).collect())))
            .collect(),
        Kind::User => crate::directory::user_groups(store, &ids)
            .await?
            .into_iter()
            .map(|(id, gs)| {
                let refs = gs
                    .into_iter()
                    .map(|g| json!({"value": g.id, "display": g.display}))
                    .collect();
                (id, Value::Array(refs))
            })
            .collect(),
    })
}

/// The resource as filters see it: the stored document with `id`, `meta`
/// and (when loaded) `members` / `groups`.
fn eval_document(kind: Kind, row: &Row, related: Option<Value>) -> Result<Value> {
    let what = format!("{} {}", kind.name(), row.id);
    let mut doc = match parse_document(&row.document, &what)? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    doc.insert("id".into(), Value::String(row.id.clone()));
    let meta = Meta {
        resource_type: kind.name().into(),
        created: row.created,
        last_modified: row.updated,
        location: String::new(),
        version: version(row.version, &what)?,
    };
    doc.insert("meta".into(), meta.to_json());
    if let Some(r) = related {
        let key = match kind {
            Kind::User => "groups",
            Kind::Group => "members",
        };
        doc.insert(key.into(), r);
    }
    Ok(Value::Object(doc))
}

/// A sort key; `None` (missing) sorts after every value.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Key {
    Bool(bool),
    Num(f64),
    Time(DateTime<Utc>),
    Str(String),
}

fn cmp_keys(a: &Option<Key>, b: &Option<Key>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
    }
}

fn column_key(row: &Row, target: Target) -> Option<Key> {
    match target {
        Target::UserName => row.user_name_norm.clone().map(Key::Str),
        Target::DisplayName => row.display_name_norm.clone().map(Key::Str),
        Target::ExternalId => row.external_id.clone().map(Key::Str),
        Target::Created => Some(Key::Time(row.created)),
        Target::LastModified => Some(Key::Time(row.updated)),
        _ => Some(Key::Str(row.id.clone())),
    }
}

/// The value a document sorts by: the attribute (for a multi-valued one,
/// its primary or else first value), strings lower-cased unless the
/// attribute is caseExact.
fn document_key(kind: Kind, doc: &Value, path: &AttrPath) -> Option<Key> {
    let schema = kind.schema();
    let resolved = schema.resolve(path);
    let exact = resolved.is_some_and(|r| {
        let leaf = r.leaf();
        let leaf = if leaf.ty == scim::schemas::AttrType::Complex {
            leaf.sub_attribute("value").unwrap_or(leaf)
        } else {
            leaf
        };
        leaf.case_exact
    });
    let top = match &path.urn {
        Some(urn) if !urn.eq_ignore_ascii_case(schema.core().id.as_str()) => {
            get_ci(doc, urn).and_then(|ext| get_ci(ext, &path.name))
        }
        _ => get_ci(doc, &path.name).or_else(|| {
            let ext = resolved.and_then(|r| r.schema)?;
            get_ci(doc, &ext.id).and_then(|e| get_ci(e, &path.name))
        }),
    }?;
    let element = match top {
        Value::Array(items) => items
            .iter()
            .find(|i| get_ci(i, "primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| items.first())?,
        other => other,
    };
    let leaf = match (&path.sub, element) {
        (Some(sub), e) => get_ci(e, sub)?,
        (None, e @ Value::Object(_)) => get_ci(e, "value")?,
        (None, e) => e,
    };
    match leaf {
        Value::String(s) if exact => Some(Key::Str(s.clone())),
        Value::String(s) => Some(Key::Str(lower(s))),
        Value::Number(n) => n.as_f64().map(Key::Num),
        Value::Bool(b) => Some(Key::Bool(*b)),
        _ => None,
    }
}

fn sort_memory(kind: Kind, rows: &mut [(Row, Value)], sort: &Sort, descending: bool) {
    let mut keyed: Vec<(Option<Key>, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, (row, doc))| {
            let key = match sort {
                Sort::Column(t) => column_key(row, *t),
                Sort::Document(p) => document_key(kind, doc, p),
            };
            (key, i)
        })
        .collect();
    let by_id = matches!(sort, Sort::Column(Target::Id));
    keyed.sort_by(|(ka, ia), (kb, ib)| {
        let mut o = cmp_keys(ka, kb);
        if descending {
            o = o.reverse();
        }
        if by_id {
            return o;
        }
        o.then_with(|| rows[*ia].0.id.cmp(&rows[*ib].0.id))
    });
    let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    apply_permutation(rows, order);
}

/// Reorders `rows` so that position `k` holds the old `rows[order[k]]`.
fn apply_permutation<T>(rows: &mut [T], order: Vec<usize>) {
    let mut pos: Vec<usize> = (0..rows.len()).collect(); // where old i is now
    let mut at: Vec<usize> = (0..rows.len()).collect(); // which old index is at k
    for (k, &want) in order.iter().enumerate() {
        let cur = pos[want];
        if cur != k {
            rows.swap(k, cur);
            let displaced = at[k];
            at[k] = want;
            at[cur] = displaced;
            pos[want] = k;
            pos[displaced] = cur;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation() {
        let mut v = vec!['a', 'b', 'c', 'd'];
        apply_permutation(&mut v, vec![2, 0, 3, 1]);
        assert_eq!(v, vec!['c', 'a', 'd', 'b']);
    }

    #[test]
    fn missing_sorts_last() {
        assert_eq!(
            cmp_keys(&None, &Some(Key::Str("a".into()))),
            Ordering::Greater
        );
        assert_eq!(
            cmp_keys(&Some(Key::Num(1.0)), &Some(Key::Num(2.0))),
            Ordering::Less
        );
    }
}

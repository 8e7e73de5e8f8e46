//! A super tenant's copies in its child tenants, kept in the same
//! transaction as the super tenant's own write.
//!
//! Every user or group write on a super tenant ends with [`follow`]: it
//! reads the routing rules and linked children (in the transaction, so a
//! concurrent rule change is either wholly before or wholly after), works
//! out where each touched user and group goes, and writes the copies with
//! the child's own write bodies (`directory::*_in`), so each child derives
//! its own roles and appends its own events. The `copies` table links each
//! copy to its source, says whether the source is routed there now, and
//! keeps the rules that route it (the "why").
//!
//! What a copy follows:
//! - a user routed to a child has a copy there with the source's document;
//!   one routed nowhere any more is deactivated (its document kept in step,
//!   `active` false) or deleted, by the child's link; routed again, it is
//!   reactivated, not duplicated;
//! - a group selected by a group rule is copied into that rule's child with
//!   the members routed there (users whose copies are routed, groups with a
//!   copy); a group no rule selects any more is deleted from the child;
//! - a source deleted in the super tenant is deleted in every child;
//! - a copy to be created whose name is already taken in the child by a
//!   resource that is no copy (a customer moved in with its own users)
//!   adopts that resource instead of failing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use roles::GroupFacts;
use scim::patch::{Member, MemberChange};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::Value;
use uuid::Uuid;

use crate::columns::{group_columns, user_columns};
use crate::db::{TxError, dbx, now};
use crate::directory::{self, CHUNK, GroupChange, NewGroup, NewUser, UserUpdate};
use crate::entity::{copies, groups, routing_policies, super_links, tenants, users};
use crate::fanout::OnUnroute;
use crate::routing::{RuleSpec, Rules};
use crate::{StoreError, TenantKind, TenantStore};

const USER: &str = "user";
const GROUP: &str = "group";

/// What one source write touched.
pub(crate) enum Touched<'a> {
    /// A user written: its id, its document (`None`: deleted), and whether
    /// it was just created (then it has no groups and no copies yet).
    User {
        /// The user's id.
        id: &'a str,
        /// Its document as written; `None` when deleted.
        document: Option<&'a Value>,
        /// Created by this write.
        new: bool,
    },
    /// A group written: its id, what changed, and (for a group created or
    /// deleted) all its members.
    Group {
        /// The group's id.
        id: &'a str,
        /// Members added and removed, and whether it was renamed.
        change: &'a GroupChange,
        /// Every member, when the whole group is new or gone.
        all_members: &'a [String],
    },
}

/// What happened to one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyAction {
    /// A new copy was made.
    Created,
    /// A resource already in the child (not a copy) became the copy.
    Adopted,
    /// The copy was brought in line with its source.
    Updated,
    /// A deactivated copy was routed again.
    Reactivated,
    /// The source stopped being routed there: the copy is deactivated.
    Deactivated,
    /// The copy was deleted (source deleted, or no longer routed there).
    Deleted,
}

impl CopyAction {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyAction::Created => "created",
            CopyAction::Adopted => "adopted",
            CopyAction::Updated => "updated",
            CopyAction::Reactivated => "reactivated",
            CopyAction::Deactivated => "deactivated",
            CopyAction::Deleted => "deleted",
        }
    }
}

/// One copy a super tenant's write changed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The child tenant's slug.
    pub child: String,
    /// "User" or "Group".
    pub resource_type: &'static str,
    /// The source's id in the super tenant.
    pub source_id: String,
    /// The copy's id in the child.
    pub copy_id: String,
    /// What happened.
    pub action: CopyAction,
    /// The rules that route the source there (empty when it left).
    pub rules: Vec<String>,
}

/// A child the super tenant feeds.
#[derive(Clone)]
struct Child {
    id: String,
    store: TenantStore,
    on_unroute: OnUnroute,
}

/// A super tenant's rules and children, as read in one transaction.
#[derive(Clone)]
pub(crate) struct Fanout {
    super_id: String,
    rules: Rules,
    /// By slug (what rules name).
    children: BTreeMap<String, Child>,
    /// Child tenant id -> slug.
    slugs: HashMap<String, String>,
}

/// What a cached [`Fanout`] was built from: the routing policy's version
/// and change time, and each link (child id, on-unroute), sorted.
type FanoutStamp = (Option<(i64, DateTime<Utc>)>, Vec<(String, String)>);

/// Built fan-outs by super tenant (see [`crate::db::Inner`]): a write reads
/// the policy's stamp and the links (two small reads) and reuses the
/// parsed rules and child tenants while they are the same.
#[derive(Default)]
pub(crate) struct FanoutCache(
    std::sync::Mutex<HashMap<Uuid, (FanoutStamp, std::sync::Arc<Fanout>)>>,
);

impl FanoutCache {
    fn get(&self, tenant: Uuid, stamp: &FanoutStamp) -> Option<std::sync::Arc<Fanout>> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&tenant)
            .filter(|(s, _)| s == stamp)
            .map(|(_, f)| f.clone())
    }

    fn put(&self, tenant: Uuid, stamp: FanoutStamp, fanout: std::sync::Arc<Fanout>) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(tenant, (stamp, fanout));
    }
}

impl Fanout {
    /// The super tenant's fan-out, or `None` when `store` is no super
    /// tenant or feeds no child. The links are read with a share lock
    /// (PostgreSQL), so an unlink waits for the writes fanning out to the
    /// child it removes.
    pub(crate) async fn load(
        store: &TenantStore,
        txn: &impl ConnectionTrait,
    ) -> Result<Option<std::sync::Arc<Fanout>>, TxError> {
        if store.tenant.kind != TenantKind::Super {
            return Ok(None);
        }
        let super_id = store.tenant.id.to_string();
        let mut links: Vec<(String, String)> = super_links::Entity::find()
            .select_only()
            .column(super_links::Column::ChildTenantId)
            .column(super_links::Column::OnUnroute)
            .filter(super_links::Column::SuperTenantId.eq(super_id.clone()))
            .lock_shared()
            .into_tuple()
            .all(txn)
            .await
            .map_err(dbx)?;
        if links.is_empty() {
            return Ok(None);
        }
        links.sort();
        // Only the stamp on every write: the rules' text is large, and
        // `one()`'s bound `LIMIT` would make SQLite prepare the statement
        // again each time.
        let version: Option<(i64, DateTime<Utc>)> = routing_policies::Entity::find()
            .select_only()
            .column(routing_policies::Column::Version)
            .column(routing_policies::Column::UpdatedAt)
            .filter(routing_policies::Column::SuperTenantId.eq(super_id.clone()))
            .into_tuple()
            .all(txn)
            .await
            .map_err(dbx)?
            .into_iter()
            .next();
        let cache = &store.inner.fanouts;
        if let Some(hit) = cache.get(store.tenant.id, &(version, links.clone())) {
            return Ok(Some(hit));
        }
        let policy = routing_policies::Entity::find_by_id(super_id.clone())
            .one(txn)
            .await
            .map_err(dbx)?;
        // The row itself names what it was built from (on PostgreSQL it may
        // be newer than the stamp read a statement earlier).
        let stamp: FanoutStamp = (policy.as_ref().map(|p| (p.version, p.updated_at)), links);
        let ids: Vec<String> = stamp.1.iter().map(|(id, _)| id.clone()).collect();
        let rows = tenants::Entity::find()
            .filter(tenants::Column::Id.is_in(ids))
            .all(txn)
            .await
            .map_err(dbx)?;
        let on_unroute: HashMap<&str, OnUnroute> = stamp
            .1
            .iter()
            .map(|(id, how)| {
                let how = OnUnroute::parse(how).unwrap_or(OnUnroute::Deactivate);
                (id.as_str(), how)
            })
            .collect();
        let mut children = BTreeMap::new();
        let mut slugs = HashMap::new();
        for row in rows {
            let tenant = crate::admin::tenant_from_row(row)?;
            let id = tenant.id.to_string();
            slugs.insert(id.clone(), tenant.slug.clone());
            children.insert(
                tenant.slug.clone(),
                Child {
                    on_unroute: on_unroute
                        .get(id.as_str())
                        .copied()
                        .unwrap_or(OnUnroute::Deactivate),
                    id,
                    store: TenantStore {
                        inner: store.inner.clone(),
                        tenant,
                    },
                },
            );
        }
        let rules = match &policy {
            Some(row) => {
                let specs: Vec<RuleSpec> = serde_json::from_str(&row.rules).map_err(|e| {
                    StoreError::Internal(format!("routing rules of {super_id} do not parse: {e}"))
                })?;
                Rules::parse(&specs).map_err(|e| {
                    StoreError::Internal(format!("stored routing rules are invalid: {e}"))
                })?
            }
            None => Rules::default(),
        };
        let built = std::sync::Arc::new(Fanout {
            super_id,
            rules,
            children,
            slugs,
        });
        cache.put(store.tenant.id, stamp, built.clone());
        Ok(Some(built))
    }
}

/// Brings the copies of what a super tenant's write touched in line with
/// it, in the same transaction; returns what changed. Does nothing (and
/// reads nothing) for a tenant that is not a super tenant.
pub(crate) async fn follow(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    touched: Touched<'_>,
) -> Result<Vec<Routed>, TxError> {
    if store.tenant.kind != TenantKind::Super {
        return Ok(Vec::new());
    }
    let Some(fanout) = Fanout::load(store, txn).await? else {
        return Ok(Vec::new());
    };
    let mut run = Run::new(store, &fanout);
    match touched {
        Touched::User { id, document, new } => {
            run.route_one(txn, id, document, new).await?;
        }
        Touched::Group {
            id,
            change,
            all_members,
        } => {
            // A rename can change where every member goes (group rules
            // match names); otherwise only the members that came or went.
            let mut users: BTreeSet<String> = all_members.iter().cloned().collect();
            users.extend(change.added.iter().cloned());
            users.extend(change.removed.iter().cloned());
            if change.renamed {
                users.extend(directory::all_member_ids(store, txn, id).await?);
            }
            let users: Vec<String> = users.into_iter().collect();
            run.route_users(txn, &users, false).await?;
            run.route_group(txn, id, change).await?;
        }
    }
    run.apply_member_deltas(txn).await?;
    Ok(run.out)
}

/// Re-routes `user_ids` and `group_ids` of a super tenant under its
/// current rules (the re-route job's batch): users first, then the groups
/// with their full member lists.
pub(crate) async fn reroute(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    user_ids: &[String],
    group_ids: &[String],
) -> Result<Vec<Routed>, TxError> {
    let Some(fanout) = Fanout::load(store, txn).await? else {
        return Ok(Vec::new());
    };
    let mut run = Run::new(store, &fanout);
    run.route_users(txn, user_ids, false).await?;
    for id in group_ids {
        run.resync_group(txn, id).await?;
    }
    run.apply_member_deltas(txn).await?;
    Ok(run.out)
}

/// One user copy's change, decided before any is written.
struct CopyPlan {
    slug: String,
    step: UserStep,
    copy: Option<copies::Model>,
    /// The rules routing the user there (none when it leaves).
    rules: Vec<String>,
    /// The copy to make, for [`UserStep::Create`].
    new: Option<NewUser>,
    /// The copy's row, for the steps that write over it (see
    /// [`with_rows`]).
    row: Option<users::Model>,
    /// The update those steps make.
    update: Option<UserUpdate>,
}

impl CopyPlan {
    /// Prepares the update this step makes over its copy's row, from the
    /// source's `document`.
    fn prepare_update(&mut self, document: Option<&Value>) -> Result<(), TxError> {
        let (Some(row), Some(doc)) = (&self.row, document) else {
            return Ok(());
        };
        let target = match self.step {
            UserStep::Update | UserStep::Reactivate => doc.clone(),
            // Kept in step while it waits (a later rename would otherwise
            // collide with the stale name), `active` off.
            UserStep::Deactivate | UserStep::Follow => deactivated(doc.clone()),
            UserStep::Create | UserStep::Delete => return Ok(()),
        };
        self.update = Some(UserUpdate::prepare(row, target)?);
        Ok(())
    }
}

/// One user's plan: its id, document (`None` when deleted), groups and
/// copy steps.
type UserPlan<'a> = (&'a str, Option<Value>, &'a [GroupFacts], Vec<CopyPlan>);

/// Gives each step of `planned` the copy row it writes over, from
/// `current` (see [`copy_rows`]), and prepares its update.
fn with_rows<'a>(
    planned: Vec<UserPlan<'a>>,
    current: &mut HashMap<(String, String), users::Model>,
) -> Result<Vec<UserPlan<'a>>, TxError> {
    let planned: Vec<UserPlan<'a>> = planned
        .into_iter()
        .map(|(id, document, facts, mut plan)| {
            for step in &mut plan {
                step.row = step
                    .copy
                    .as_ref()
                    .and_then(|c| current.remove(&(c.child_tenant_id.clone(), c.child_id.clone())));
            }
            (id, document, facts, plan)
        })
        .collect();
    on_two_threads(planned, |(id, document, facts, mut plan)| {
        for step in &mut plan {
            step.prepare_update(document.as_ref())?;
        }
        Ok((id, document, facts, plan))
    })
    .into_iter()
    .collect()
}

/// Users in a chunk at and above which planning it takes a second
/// thread (see [`on_two_threads`]).
const PARALLEL_PLAN: usize = 64;

/// `f` over `items`, in order, the second half on a scoped thread of its
/// own when there are enough of them to pay for one. Planning a chunk of
/// users (parsing documents, evaluating rules, preparing new copies) is
/// pure work that the writer's thread would otherwise do alone while the
/// other cores wait for it.
fn on_two_threads<T: Send, U: Send>(mut items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    if items.len() < PARALLEL_PLAN {
        return items.into_iter().map(f).collect();
    }
    let back = items.split_off(items.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| back.into_iter().map(&f).collect::<Vec<U>>());
        let mut out: Vec<U> = items.into_iter().map(&f).collect();
        match other.join() {
            Ok(rest) => out.extend(rest),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        out
    })
}

/// The rows of the copies `plan` writes over, by (child tenant id, copy
/// id), read under lock: per child, one statement per 500 copies, where
/// one read per copy would be a statement each. (Both key columns in one
/// `IN` each would make SQLite probe every pair.)
async fn copy_rows<'p>(
    txn: &DatabaseTransaction,
    plan: impl Iterator<Item = &'p CopyPlan>,
) -> Result<HashMap<(String, String), users::Model>, TxError> {
    let mut by_child: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for copy in plan
        .filter(|p| p.step != UserStep::Create && p.step != UserStep::Delete)
        .filter_map(|p| p.copy.as_ref())
    {
        by_child
            .entry(copy.child_tenant_id.as_str())
            .or_default()
            .push(copy.child_id.as_str());
    }
    let mut out = HashMap::new();
    for (child, ids) in by_child {
        for chunk in ids.chunks(CHUNK) {
            let rows = users::Entity::find()
                .filter(users::Column::TenantId.eq(child))
                .filter(users::Column::Id.is_in(chunk.iter().copied()))
                .lock_exclusive()
                .all(txn)
                .await
                .map_err(dbx)?;
            for row in rows {
                out.insert((row.tenant_id.clone(), row.id.clone()), row);
            }
        }
    }
    Ok(out)
}

/// What happens to each of a user's copies: its routes under the
/// rules, against the copies it has, skipping copies that stay as they
/// are when the document did not change (`docs_changed` false: a group
/// write, the re-route job).
fn plan_user(
    fanout: &Fanout,
    document: Option<&Value>,
    facts: &[GroupFacts],
    copies: Vec<copies::Model>,
    docs_changed: bool,
) -> Result<Vec<CopyPlan>, TxError> {
    let routes = match document {
        Some(doc) => fanout.rules.route_user(doc, facts),
        None => BTreeMap::new(),
    };
    let mut by_child: BTreeMap<String, Option<copies::Model>> = BTreeMap::new();
    for slug in routes.keys() {
        if fanout.children.contains_key(slug) {
            by_child.insert(slug.clone(), None);
        }
    }
    for copy in copies {
        if let Some(slug) = fanout.slugs.get(&copy.child_tenant_id) {
            by_child.insert(slug.clone(), Some(copy));
        }
    }
    let mut plan = Vec::new();
    for (slug, copy) in by_child {
        let Some(child) = fanout.children.get(&slug) else {
            continue;
        };
        let rules = routes.get(&slug).cloned().unwrap_or_default();
        let routed = routes.contains_key(&slug);
        let Some(step) = user_step(document.is_some(), routed, copy.as_ref(), child.on_unroute)
        else {
            continue;
        };
        // Copies that stay where they are already hold this document.
        let same_rules = copy.as_ref().is_some_and(|c| stored_rules(c) == rules);
        if !docs_changed && (step == UserStep::Follow || (step == UserStep::Update && same_rules)) {
            continue;
        }
        let new = match (step, document) {
            (UserStep::Create, Some(doc)) => {
                Some(NewUser::prepare(directory::new_resource_id(), doc.clone())?)
            }
            _ => None,
        };
        plan.push(CopyPlan {
            slug,
            step,
            copy,
            rules,
            new,
            row: None,
            update: None,
        });
    }
    Ok(plan)
}

/// Member changes to make in a child's copy of a source group.
#[derive(Default)]
struct MemberDelta {
    add: BTreeSet<String>,
    remove: BTreeSet<String>,
    document: Option<Value>,
}

/// One fan-out in progress.
struct Run<'a> {
    source: &'a TenantStore,
    fanout: &'a Fanout,
    /// (child slug, source group id) -> copy member changes, by copy id.
    deltas: BTreeMap<(String, String), MemberDelta>,
    /// (child slug, source group id) of group copies made or removed in
    /// this run: their members are already right.
    settled: HashSet<(String, String)>,
    out: Vec<Routed>,
    at: DateTime<Utc>,
    /// User copy links to insert (see `flush_copies`).
    pending: Vec<copies::ActiveModel>,
    /// User copy links to update, as (child tenant id, routed, rules)
    /// -> source ids (see `flush_copies`).
    relinks: BTreeMap<(String, bool, String), Vec<String>>,
}

fn parse_doc(text: &str, what: &str) -> Result<Value, TxError> {
    Ok(directory::parse_document(text, what)?)
}

fn deactivated(mut doc: Value) -> Value {
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("active".into(), Value::Bool(false));
    }
    doc
}

fn rules_text(rules: &[String]) -> String {
    serde_json::to_string(rules).unwrap_or_else(|_| "[]".into())
}

fn stored_rules(row: &copies::Model) -> Vec<String> {
    serde_json::from_str(&row.rules).unwrap_or_default()
}

/// What to do with a user's copy in one child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserStep {
    /// Make one (or adopt the child's own user of that name).
    Create,
    /// Bring the routed copy in line with the source.
    Update,
    /// Route a deactivated copy again.
    Reactivate,
    /// The source left: deactivate the copy.
    Deactivate,
    /// Keep a deactivated copy in step, still deactivated.
    Follow,
    /// Delete the copy (source deleted, or left a child that deletes).
    Delete,
}

/// The one decision both the write path and the dry run make: given
/// whether the source exists and is routed to the child, and its copy
/// there, what happens to the copy.
fn user_step(
    exists: bool,
    routed: bool,
    copy: Option<&copies::Model>,
    on_unroute: OnUnroute,
) -> Option<UserStep> {
    match (exists, routed, copy) {
        (false, _, Some(_)) => Some(UserStep::Delete),
        (true, true, None) => Some(UserStep::Create),
        (true, true, Some(c)) if c.routed => Some(UserStep::Update),
        (true, true, Some(_)) => Some(UserStep::Reactivate),
        (true, false, Some(c)) if c.routed => Some(match on_unroute {
            OnUnroute::Delete => UserStep::Delete,
            OnUnroute::Deactivate => UserStep::Deactivate,
        }),
        (true, false, Some(_)) => Some(UserStep::Follow),
        (_, _, None) => None,
    }
}

impl<'a> Run<'a> {
    fn new(source: &'a TenantStore, fanout: &'a Fanout) -> Run<'a> {
        Run {
            source,
            fanout,
            deltas: BTreeMap::new(),
            settled: HashSet::new(),
            out: Vec::new(),
            at: now(),
            pending: Vec::new(),
            relinks: BTreeMap::new(),
        }
    }

    fn record(
        &mut self,
        child: &str,
        resource_type: &'static str,
        source_id: &str,
        copy_id: &str,
        action: CopyAction,
        rules: &[String],
    ) {
        self.out.push(Routed {
            child: child.to_owned(),
            resource_type,
            source_id: source_id.to_owned(),
            copy_id: copy_id.to_owned(),
            action,
            rules: rules.to_vec(),
        });
    }

    fn delta(&mut self, child: &str, group: &str) -> &mut MemberDelta {
        self.deltas
            .entry((child.to_owned(), group.to_owned()))
            .or_default()
    }

    /// Routes each of `ids` (users of the super tenant, or ids that are
    /// not users, which are skipped) and writes their copies.
    async fn route_users(
        &mut self,
        txn: &DatabaseTransaction,
        ids: &[String],
        docs_changed: bool,
    ) -> Result<(), TxError> {
        for chunk in ids.chunks(CHUNK) {
            let rows: HashMap<String, users::Model> = users::Entity::find()
                .filter(users::Column::TenantId.eq(self.fanout.super_id.clone()))
                .filter(users::Column::Id.is_in(chunk.iter().cloned()))
                .all(txn)
                .await
                .map_err(dbx)?
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect();
            let groups = crate::roles::groups_of(self.source, txn, chunk).await?;
            let mut existing = copies_by_source(txn, &self.fanout.super_id, USER, chunk).await?;
            let inputs: Vec<_> = chunk
                .iter()
                .filter_map(|id| {
                    let copies = existing.remove(id).unwrap_or_default();
                    let row = rows.get(id);
                    let facts = groups.get(id).map_or(&[][..], Vec::as_slice);
                    (row.is_some() || !copies.is_empty()).then_some((id, row, facts, copies))
                })
                .collect();
            let fanout = self.fanout;
            let planned = on_two_threads(inputs, |(id, row, facts, copies)| {
                let document = row.map(|r| parse_doc(&r.document, "user")).transpose()?;
                let plan = plan_user(fanout, document.as_ref(), facts, copies, docs_changed)?;
                Ok::<_, TxError>((id.as_str(), document, facts, plan))
            })
            .into_iter()
            .collect::<Result<Vec<_>, TxError>>()?;
            let mut current =
                copy_rows(txn, planned.iter().flat_map(|(_, _, _, plan)| plan.iter())).await?;
            for planned in with_rows(planned, &mut current)? {
                self.route_user(txn, planned).await?;
            }
        }
        self.flush_copies(txn).await
    }

    /// Routes one user a write just wrote (`document`, `None` when it was
    /// deleted), without reading it back.
    async fn route_one(
        &mut self,
        txn: &DatabaseTransaction,
        id: &str,
        document: Option<&Value>,
        new: bool,
    ) -> Result<(), TxError> {
        let ids = [id.to_owned()];
        let (facts, copies) = if new {
            (Vec::new(), Vec::new())
        } else {
            let facts = crate::roles::groups_of(self.source, txn, &ids)
                .await?
                .remove(id)
                .unwrap_or_default();
            let copies = copies_by_source(txn, &self.fanout.super_id, USER, &ids)
                .await?
                .remove(id)
                .unwrap_or_default();
            (facts, copies)
        };
        if document.is_none() && copies.is_empty() {
            return Ok(());
        }
        let plan = plan_user(self.fanout, document, &facts, copies, true)?;
        let mut current = copy_rows(txn, plan.iter()).await?;
        let planned = vec![(id, document.cloned(), facts.as_slice(), plan)];
        for planned in with_rows(planned, &mut current)? {
            self.route_user(txn, planned).await?;
        }
        self.flush_copies(txn).await
    }

    /// Inserts the links of the user copies made so far, and updates the
    /// ones changed so far, a statement per 50 new links and one per
    /// child and outcome (per 500) for the changed: a statement per copy
    /// was a tenth of a re-route's time.
    async fn flush_copies(&mut self, txn: &DatabaseTransaction) -> Result<(), TxError> {
        let rows = std::mem::take(&mut self.pending);
        for chunk in rows.chunks(CHUNK / 10) {
            copies::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(txn)
                .await
                .map_err(dbx)?;
        }
        for ((child, routed, rules), sources) in std::mem::take(&mut self.relinks) {
            for chunk in sources.chunks(CHUNK) {
                copies::Entity::update_many()
                    .col_expr(copies::Column::Routed, Expr::value(routed))
                    .col_expr(copies::Column::Rules, Expr::value(rules.clone()))
                    .col_expr(copies::Column::UpdatedAt, Expr::value(self.at))
                    .filter(copies::Column::ChildTenantId.eq(child.clone()))
                    .filter(copies::Column::Kind.eq(USER))
                    .filter(copies::Column::SourceId.is_in(chunk.iter().cloned()))
                    .exec(txn)
                    .await
                    .map_err(dbx)?;
            }
        }
        Ok(())
    }

    /// Marks user copy `copy` routed (under `rules`) or not, at the next
    /// [`Run::flush_copies`].
    fn relink(&mut self, copy: &copies::Model, routed: bool, rules: &[String]) {
        self.relinks
            .entry((copy.child_tenant_id.clone(), routed, rules_text(rules)))
            .or_default()
            .push(copy.source_id.clone());
    }

    /// Carries out one user's plan (see [`with_rows`]).
    async fn route_user(
        &mut self,
        txn: &DatabaseTransaction,
        (id, document, facts, plan): UserPlan<'_>,
    ) -> Result<(), TxError> {
        for CopyPlan {
            slug,
            step,
            copy,
            rules,
            new,
            row,
            update,
        } in plan
        {
            let Some(child) = self.fanout.children.get(&slug) else {
                continue;
            };
            let rules = &rules;
            match (step, &document, copy) {
                (UserStep::Delete, _, Some(copy)) => {
                    directory::delete_user_in(&child.store, txn, &copy.child_id, None).await?;
                    delete_copy(txn, &copy).await?;
                    self.record(&slug, "User", id, &copy.child_id, CopyAction::Deleted, &[]);
                }
                (UserStep::Create, Some(doc), _) => {
                    let Some(new) = new else { continue };
                    let (copy_id, action) =
                        self.create_user_copy(txn, child, id, doc, &new).await?;
                    self.pending.push(copy_row(
                        &self.fanout.super_id,
                        child,
                        USER,
                        id,
                        &copy_id,
                        rules,
                        self.at,
                    ));
                    self.entered(&slug, &copy_id, facts);
                    self.record(&slug, "User", id, &copy_id, action, rules);
                }
                (UserStep::Update | UserStep::Reactivate, Some(_), Some(copy)) => {
                    let (Some(current), Some(update)) = (row, update) else {
                        // Deleted in the child behind the link's back (never
                        // through SCIM, which refuses): the link goes too,
                        // and the next write makes a new copy.
                        delete_copy(txn, &copy).await?;
                        continue;
                    };
                    let before = Some(current.version);
                    let after =
                        directory::apply_user_update(&child.store, txn, &current, update).await?;
                    if !copy.routed || &stored_rules(&copy) != rules {
                        self.relink(&copy, true, rules);
                    }
                    if step == UserStep::Reactivate {
                        self.entered(&slug, &copy.child_id, facts);
                        let action = CopyAction::Reactivated;
                        self.record(&slug, "User", id, &copy.child_id, action, rules);
                    } else if before != i64::try_from(after.version).ok() {
                        self.record(
                            &slug,
                            "User",
                            id,
                            &copy.child_id,
                            CopyAction::Updated,
                            rules,
                        );
                    }
                }
                (UserStep::Deactivate | UserStep::Follow, Some(_), Some(copy)) => {
                    let (Some(current), Some(update)) = (row, update) else {
                        delete_copy(txn, &copy).await?;
                        continue;
                    };
                    directory::apply_user_update(&child.store, txn, &current, update).await?;
                    if step == UserStep::Deactivate {
                        self.relink(&copy, false, &[]);
                        self.left(&slug, &copy.child_id, facts);
                        let action = CopyAction::Deactivated;
                        self.record(&slug, "User", id, &copy.child_id, action, &[]);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A user copy now routed: it joins the child's copies of its groups.
    fn entered(&mut self, child: &str, copy_id: &str, facts: &[GroupFacts]) {
        for g in facts {
            let d = self.delta(child, &g.id);
            d.remove.remove(copy_id);
            d.add.insert(copy_id.to_owned());
        }
    }

    /// A user copy no longer routed: it leaves the child's group copies.
    fn left(&mut self, child: &str, copy_id: &str, facts: &[GroupFacts]) {
        for g in facts {
            let d = self.delta(child, &g.id);
            d.add.remove(copy_id);
            d.remove.insert(copy_id.to_owned());
        }
    }

    async fn create_user_copy(
        &mut self,
        txn: &DatabaseTransaction,
        child: &Child,
        source_id: &str,
        doc: &Value,
        new: &NewUser,
    ) -> Result<(String, CopyAction), TxError> {
        if directory::create_user_unless_taken(&child.store, txn, new, self.at).await? {
            return Ok((new.id().to_owned(), CopyAction::Created));
        }
        let cols = user_columns(doc)?;
        let taken: Vec<String> = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .filter(users::Column::TenantId.eq(child.id.clone()))
            .filter(users::Column::UserNameNorm.eq(cols.user_name_norm.clone()))
            .into_tuple()
            .all(txn)
            .await
            .map_err(dbx)?;
        if let Some(existing) = taken.into_iter().next() {
            if is_copy(txn, &child.id, USER, &existing).await? {
                return Err(StoreError::Uniqueness(format!(
                    "userName '{}' is taken in child tenant '{}' by a copy of another user",
                    cols.user_name, child.store.tenant.slug
                ))
                .into());
            }
            directory::replace_user_in(&child.store, txn, &existing, doc.clone(), None).await?;
            tracing::info!(
                child = %child.store.tenant.slug,
                source = source_id,
                copy = %existing,
                "adopted a user already in the child as its copy"
            );
            return Ok((existing, CopyAction::Adopted));
        }
        Err(StoreError::Internal(format!(
            "userName '{}' is taken in child tenant '{}' and yet not found",
            cols.user_name, child.store.tenant.slug
        ))
        .into())
    }

    /// Routes a group written in this run, and carries its member changes
    /// to its copies.
    async fn route_group(
        &mut self,
        txn: &DatabaseTransaction,
        id: &str,
        change: &GroupChange,
    ) -> Result<(), TxError> {
        let row = directory::find_group(self.source, txn, id, false)
            .await
            .map_err(dbx)?;
        let routes = self.sync_group_copies(txn, id, row.as_ref()).await?;
        let Some(row) = row else {
            return Ok(());
        };
        let document = parse_doc(&row.document, "group")?;
        for slug in routes {
            if self.settled.contains(&(slug.clone(), id.to_owned())) {
                continue;
            }
            let Some(child) = self.fanout.children.get(&slug) else {
                continue;
            };
            let added = member_copies(txn, &child.id, &change.added, true).await?;
            let removed = member_copies(txn, &child.id, &change.removed, false).await?;
            let d = self.delta(&slug, id);
            for m in added {
                d.remove.remove(&m);
                d.add.insert(m);
            }
            for m in removed {
                d.add.remove(&m);
                d.remove.insert(m);
            }
            d.document = Some(document.clone());
        }
        Ok(())
    }

    /// Re-routes a group from scratch (the re-route job): its copies where
    /// it is routed, with exactly the members routed there.
    async fn resync_group(&mut self, txn: &DatabaseTransaction, id: &str) -> Result<(), TxError> {
        let row = directory::find_group(self.source, txn, id, false)
            .await
            .map_err(dbx)?;
        let routes = self.sync_group_copies(txn, id, row.as_ref()).await?;
        let Some(row) = row else {
            return Ok(());
        };
        let document = parse_doc(&row.document, "group")?;
        let members = directory::all_member_ids(self.source, txn, id).await?;
        for slug in routes {
            if self.settled.contains(&(slug.clone(), id.to_owned())) {
                continue;
            }
            let Some(child) = self.fanout.children.get(&slug) else {
                continue;
            };
            let wanted = routed_members(txn, &child.id, &members).await?;
            let copy = copies_in(txn, &child.id, GROUP, &[id.to_owned()])
                .await?
                .remove(id);
            let Some(copy) = copy else { continue };
            let changes = vec![MemberChange::Replace(wanted)];
            let doc = document.clone();
            let (before, after) = {
                let before = directory::find_group(&child.store, txn, &copy.child_id, false)
                    .await
                    .map_err(dbx)?
                    .map(|r| r.version);
                let (resource, _) = directory::modify_group_in(
                    &child.store,
                    txn,
                    &copy.child_id,
                    None,
                    &move |_: &crate::Resource| Ok((doc.clone(), changes.clone())),
                )
                .await?;
                (before, resource.version)
            };
            if before != i64::try_from(after).ok() {
                let rules = stored_rules(&copy);
                self.record(
                    &slug,
                    "Group",
                    id,
                    &copy.child_id,
                    CopyAction::Updated,
                    &rules,
                );
            }
        }
        Ok(())
    }

    /// Creates, deletes and relinks the copies of group `id` (`row`: its
    /// current row, `None` when deleted) by the rules; returns the
    /// children it is routed to.
    async fn sync_group_copies(
        &mut self,
        txn: &DatabaseTransaction,
        id: &str,
        row: Option<&groups::Model>,
    ) -> Result<Vec<String>, TxError> {
        let routes = match row {
            Some(r) => self.fanout.rules.route_group(&GroupFacts {
                id: r.id.clone(),
                external_id: r.external_id.clone(),
                display_name: r.display_name.clone(),
            }),
            None => BTreeMap::new(),
        };
        let existing = copies_by_source(txn, &self.fanout.super_id, GROUP, &[id.to_owned()])
            .await?
            .remove(id)
            .unwrap_or_default();
        let mut by_child: BTreeMap<String, Option<copies::Model>> = BTreeMap::new();
        for slug in routes.keys() {
            if self.fanout.children.contains_key(slug) {
                by_child.insert(slug.clone(), None);
            }
        }
        for copy in existing {
            if let Some(slug) = self.fanout.slugs.get(&copy.child_tenant_id) {
                by_child.insert(slug.clone(), Some(copy));
            }
        }
        let mut routed = Vec::new();
        for (slug, copy) in by_child {
            let Some(child) = self.fanout.children.get(&slug) else {
                continue;
            };
            match (row, routes.get(&slug), copy) {
                (Some(row), Some(rules), None) => {
                    let doc = parse_doc(&row.document, "group")?;
                    let members = directory::all_member_ids(self.source, txn, id).await?;
                    let members = routed_members(txn, &child.id, &members).await?;
                    let (copy_id, action) =
                        self.create_group_copy(txn, child, &doc, members).await?;
                    insert_copy(
                        txn,
                        &self.fanout.super_id,
                        child,
                        GROUP,
                        id,
                        &copy_id,
                        rules,
                        self.at,
                    )
                    .await?;
                    self.settled.insert((slug.clone(), id.to_owned()));
                    self.record(&slug, "Group", id, &copy_id, action, rules);
                    routed.push(slug);
                }
                (Some(_), Some(rules), Some(copy)) => {
                    if &stored_rules(&copy) != rules {
                        update_copy(txn, &copy, true, rules, self.at).await?;
                    }
                    routed.push(slug);
                }
                (_, _, Some(copy)) => {
                    directory::delete_group_in(&child.store, txn, &copy.child_id, None).await?;
                    delete_copy(txn, &copy).await?;
                    self.settled.insert((slug.clone(), id.to_owned()));
                    self.record(&slug, "Group", id, &copy.child_id, CopyAction::Deleted, &[]);
                }
                (_, _, None) => {}
            }
        }
        Ok(routed)
    }

    async fn create_group_copy(
        &mut self,
        txn: &DatabaseTransaction,
        child: &Child,
        doc: &Value,
        members: Vec<Member>,
    ) -> Result<(String, CopyAction), TxError> {
        let cols = group_columns(doc)?;
        let taken: Vec<String> = groups::Entity::find()
            .select_only()
            .column(groups::Column::Id)
            .filter(groups::Column::TenantId.eq(child.id.clone()))
            .filter(groups::Column::DisplayNameNorm.eq(cols.display_name_norm.clone()))
            .into_tuple()
            .all(txn)
            .await
            .map_err(dbx)?;
        if let Some(existing) = taken.into_iter().next() {
            if is_copy(txn, &child.id, GROUP, &existing).await? {
                return Err(StoreError::Uniqueness(format!(
                    "displayName '{}' is taken in child tenant '{}' by a copy of another group",
                    cols.display_name, child.store.tenant.slug
                ))
                .into());
            }
            directory::replace_group_in(&child.store, txn, &existing, doc.clone(), members, None)
                .await?;
            return Ok((existing, CopyAction::Adopted));
        }
        let new = NewGroup::prepare(directory::new_resource_id(), doc.clone(), members)?;
        let created = directory::create_group_in(&child.store, txn, &new, self.at).await?;
        Ok((created.id, CopyAction::Created))
    }

    /// Applies the collected member changes (and document updates) to the
    /// group copies, one write per copy, in a fixed order.
    async fn apply_member_deltas(&mut self, txn: &DatabaseTransaction) -> Result<(), TxError> {
        let deltas = std::mem::take(&mut self.deltas);
        for ((slug, source_group), delta) in deltas {
            if self.settled.contains(&(slug.clone(), source_group.clone())) {
                continue;
            }
            let Some(child) = self.fanout.children.get(&slug) else {
                continue;
            };
            let Some(copy) = copies_in(txn, &child.id, GROUP, std::slice::from_ref(&source_group))
                .await?
                .remove(&source_group)
            else {
                continue;
            };
            if delta.add.is_empty() && delta.remove.is_empty() && delta.document.is_none() {
                continue;
            }
            let mut changes = Vec::new();
            if !delta.remove.is_empty() {
                changes.push(MemberChange::Remove(delta.remove.into_iter().collect()));
            }
            if !delta.add.is_empty() {
                changes.push(MemberChange::Add(
                    delta.add.into_iter().map(member).collect(),
                ));
            }
            let document = delta.document;
            let before = directory::find_group(&child.store, txn, &copy.child_id, false)
                .await
                .map_err(dbx)?
                .map(|r| r.version);
            let (resource, _) = directory::modify_group_in(
                &child.store,
                txn,
                &copy.child_id,
                None,
                &move |current: &crate::Resource| {
                    let doc = document.clone().unwrap_or_else(|| current.document.clone());
                    Ok((doc, changes.clone()))
                },
            )
            .await?;
            if before != i64::try_from(resource.version).ok() {
                let rules = stored_rules(&copy);
                self.record(
                    &slug,
                    "Group",
                    &source_group,
                    &copy.child_id,
                    CopyAction::Updated,
                    &rules,
                );
            }
        }
        Ok(())
    }
}

fn member(id: String) -> Member {
    Member {
        value: id,
        display: None,
        r#type: None,
        reference: None,
    }
}

/// The copies in `child` of the source members `ids` that a group copy
/// there may hold: user copies that are routed (or any, when `any`) and
/// group copies; by copy id.
async fn member_copies(
    txn: &DatabaseTransaction,
    child: &str,
    ids: &[String],
    routed_only: bool,
) -> Result<Vec<String>, TxError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for kind in [USER, GROUP] {
        for copy in copies_in(txn, child, kind, ids).await?.into_values() {
            if !routed_only || kind == GROUP || copy.routed {
                out.push(copy.child_id);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The members a group copy in `child` holds for the source members `ids`.
async fn routed_members(
    txn: &DatabaseTransaction,
    child: &str,
    ids: &[String],
) -> Result<Vec<Member>, TxError> {
    Ok(member_copies(txn, child, ids, true)
        .await?
        .into_iter()
        .map(member)
        .collect())
}

/// The copies of `source_ids` (of `kind`) in every child, by source id.
async fn copies_by_source(
    txn: &impl ConnectionTrait,
    super_id: &str,
    kind: &str,
    source_ids: &[String],
) -> Result<HashMap<String, Vec<copies::Model>>, TxError> {
    let mut out: HashMap<String, Vec<copies::Model>> = HashMap::new();
    for chunk in source_ids.chunks(CHUNK) {
        let rows = copies::Entity::find()
            .filter(copies::Column::SuperTenantId.eq(super_id))
            .filter(copies::Column::Kind.eq(kind))
            .filter(copies::Column::SourceId.is_in(chunk.iter().cloned()))
            .all(txn)
            .await
            .map_err(dbx)?;
        for row in rows {
            out.entry(row.source_id.clone()).or_default().push(row);
        }
    }
    Ok(out)
}

/// The copies of `source_ids` (of `kind`) in one child, by source id.
async fn copies_in(
    txn: &DatabaseTransaction,
    child: &str,
    kind: &str,
    source_ids: &[String],
) -> Result<HashMap<String, copies::Model>, TxError> {
    let mut out = HashMap::new();
    for chunk in source_ids.chunks(CHUNK) {
        let rows = copies::Entity::find()
            .filter(copies::Column::ChildTenantId.eq(child))
            .filter(copies::Column::Kind.eq(kind))
            .filter(copies::Column::SourceId.is_in(chunk.iter().cloned()))
            .all(txn)
            .await
            .map_err(dbx)?;
        for row in rows {
            out.insert(row.source_id.clone(), row);
        }
    }
    Ok(out)
}

async fn is_copy(
    txn: &DatabaseTransaction,
    child: &str,
    kind: &str,
    child_id: &str,
) -> Result<bool, TxError> {
    let found: Vec<String> = copies::Entity::find()
        .select_only()
        .column(copies::Column::SourceId)
        .filter(copies::Column::ChildTenantId.eq(child))
        .filter(copies::Column::Kind.eq(kind))
        .filter(copies::Column::ChildId.eq(child_id))
        .into_tuple()
        .all(txn)
        .await
        .map_err(dbx)?;
    Ok(!found.is_empty())
}

/// The link row of a new copy.
fn copy_row(
    super_id: &str,
    child: &Child,
    kind: &str,
    source_id: &str,
    copy_id: &str,
    rules: &[String],
    at: DateTime<Utc>,
) -> copies::ActiveModel {
    copies::ActiveModel {
        child_tenant_id: Set(child.id.clone()),
        kind: Set(kind.to_owned()),
        source_id: Set(source_id.to_owned()),
        child_id: Set(copy_id.to_owned()),
        super_tenant_id: Set(super_id.to_owned()),
        routed: Set(true),
        rules: Set(rules_text(rules)),
        created_at: Set(at),
        updated_at: Set(at),
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert_copy(
    txn: &DatabaseTransaction,
    super_id: &str,
    child: &Child,
    kind: &str,
    source_id: &str,
    copy_id: &str,
    rules: &[String],
    at: DateTime<Utc>,
) -> Result<(), TxError> {
    copies::Entity::insert(copy_row(
        super_id, child, kind, source_id, copy_id, rules, at,
    ))
    .exec_without_returning(txn)
    .await
    .map_err(dbx)?;
    Ok(())
}

async fn update_copy(
    txn: &DatabaseTransaction,
    copy: &copies::Model,
    routed: bool,
    rules: &[String],
    at: DateTime<Utc>,
) -> Result<(), TxError> {
    copies::Entity::update_many()
        .col_expr(copies::Column::Routed, Expr::value(routed))
        .col_expr(copies::Column::Rules, Expr::value(rules_text(rules)))
        .col_expr(copies::Column::UpdatedAt, Expr::value(at))
        .filter(copies::Column::ChildTenantId.eq(copy.child_tenant_id.clone()))
        .filter(copies::Column::Kind.eq(copy.kind.clone()))
        .filter(copies::Column::SourceId.eq(copy.source_id.clone()))
        .exec(txn)
        .await
        .map_err(dbx)?;
    Ok(())
}

async fn delete_copy(txn: &DatabaseTransaction, copy: &copies::Model) -> Result<(), TxError> {
    copies::Entity::delete_many()
        .filter(copies::Column::ChildTenantId.eq(copy.child_tenant_id.clone()))
        .filter(copies::Column::Kind.eq(copy.kind.clone()))
        .filter(copies::Column::SourceId.eq(copy.source_id.clone()))
        .exec(txn)
        .await
        .map_err(dbx)?;
    Ok(())
}

/// A copy of a super tenant's user or group, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInfo {
    /// The child tenant's slug.
    pub child: String,
    /// "User" or "Group".
    pub resource_type: &'static str,
    /// The source's id in the super tenant.
    pub source_id: String,
    /// The copy's id in the child.
    pub copy_id: String,
    /// Whether the source is routed there now (a deactivated copy is not).
    pub routed: bool,
    /// The rules that route it there.
    pub rules: Vec<String>,
    /// When the link last changed.
    pub updated_at: DateTime<Utc>,
}

/// The copies of super tenant `store`'s resource `source_id`, by child slug.
pub(crate) async fn copies_of(
    store: &TenantStore,
    source_id: &str,
) -> crate::Result<Vec<CopyInfo>> {
    let rows = copies::Entity::find()
        .filter(copies::Column::SuperTenantId.eq(store.tenant.id.to_string()))
        .filter(copies::Column::Kind.is_in([USER, GROUP]))
        .filter(copies::Column::SourceId.eq(source_id))
        .all(&store.inner.conn)
        .await
        .map_err(crate::db::db)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: BTreeSet<String> = rows.iter().map(|r| r.child_tenant_id.clone()).collect();
    let slugs: HashMap<String, String> = tenants::Entity::find()
        .select_only()
        .column(tenants::Column::Id)
        .column(tenants::Column::Slug)
        .filter(tenants::Column::Id.is_in(ids))
        .into_tuple()
        .all(&store.inner.conn)
        .await
        .map_err(crate::db::db)?
        .into_iter()
        .collect();
    let mut out: Vec<CopyInfo> = rows
        .into_iter()
        .map(|row| CopyInfo {
            child: slugs
                .get(&row.child_tenant_id)
                .cloned()
                .unwrap_or_else(|| row.child_tenant_id.clone()),
            resource_type: if row.kind == GROUP { "Group" } else { "User" },
            rules: stored_rules(&row),
            source_id: row.source_id,
            copy_id: row.child_id,
            routed: row.routed,
            updated_at: row.updated_at,
        })
        .collect();
    out.sort_by(|a, b| a.child.cmp(&b.child));
    Ok(out)
}

/// Entries of each sample a dry run shows, at most.
pub const SAMPLE: usize = 20;

/// One user or group in a dry run's sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewEntry {
    /// Its id in the super tenant.
    pub id: String,
    /// Its userName or displayName.
    pub name: String,
}

/// What a change of routing rules would do in one child.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildMoves {
    /// The child's slug.
    pub child: String,
    /// Users who would get a copy there or have theirs reactivated.
    pub users_entering: u64,
    /// Users whose copy there would be deactivated or deleted.
    pub users_leaving: u64,
    /// Groups that would be copied there.
    pub groups_entering: u64,
    /// Groups whose copy there would be deleted.
    pub groups_leaving: u64,
    /// Some of the users entering.
    pub sample_entering: Vec<PreviewEntry>,
    /// Some of the users leaving.
    pub sample_leaving: Vec<PreviewEntry>,
}

/// A dry run of routing rules over a super tenant's directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingPreview {
    /// Users looked at (all of the super tenant's).
    pub users: u64,
    /// Groups looked at.
    pub groups: u64,
    /// Per child that something would enter or leave, by slug.
    pub children: Vec<ChildMoves>,
}

impl RoutingPreview {
    fn child(&mut self, slug: &str) -> &mut ChildMoves {
        if let Some(i) = self.children.iter().position(|c| c.child == slug) {
            return &mut self.children[i];
        }
        self.children.push(ChildMoves {
            child: slug.to_owned(),
            ..ChildMoves::default()
        });
        let last = self.children.len() - 1;
        &mut self.children[last]
    }
}

/// What `specs` would route where, against the copies as they are: the
/// same decisions the write path and the re-route job make, counted per
/// child, with samples. Reads only.
pub(crate) async fn preview(
    store: &TenantStore,
    specs: &[RuleSpec],
) -> crate::Result<RoutingPreview> {
    let rules = Rules::parse(specs).map_err(|e| StoreError::InvalidValue(e.0))?;
    let me = &store.tenant.slug;
    if store.tenant.kind != TenantKind::Super {
        return Err(StoreError::InvalidValue(format!(
            "tenant '{me}' is not a super tenant: only a super tenant routes to children"
        )));
    }
    let conn = &store.inner.conn;
    let mut out = RoutingPreview::default();
    let fanout = Fanout::load(store, conn)
        .await
        .map_err(TxError::into_error)?;
    // The same refusal storing the rules gives.
    for spec in specs {
        if !fanout
            .as_ref()
            .is_some_and(|f| f.children.contains_key(&spec.child))
        {
            return Err(StoreError::InvalidValue(format!(
                "rule {:?}: tenant '{}' is not a child of super tenant '{me}' (link it first)",
                spec.id, spec.child
            )));
        }
    }
    let Some(current) = fanout else {
        return Ok(out);
    };
    let mut fanout = (*current).clone();
    fanout.rules = rules;
    let tenant = store.tenant.id.to_string();
    let mut last = String::new();
    loop {
        let rows = users::Entity::find()
            .filter(users::Column::TenantId.eq(tenant.clone()))
            .filter(users::Column::Id.gt(last.clone()))
            .order_by_asc(users::Column::Id)
            .limit(CHUNK as u64)
            .all(conn)
            .await
            .map_err(crate::db::db)?;
        let Some(end) = rows.last() else { break };
        last = end.id.clone();
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let groups = crate::roles::groups_of(store, conn, &ids)
            .await
            .map_err(TxError::into_error)?;
        let mut existing = copies_by_source(conn, &fanout.super_id, USER, &ids)
            .await
            .map_err(TxError::into_error)?;
        for row in &rows {
            out.users += 1;
            let doc = directory::parse_document(&row.document, "user")?;
            let facts = groups.get(&row.id).map(Vec::as_slice).unwrap_or(&[]);
            let routes = fanout.rules.route_user(&doc, facts);
            let copies = existing.remove(&row.id).unwrap_or_default();
            for (slug, child) in &fanout.children {
                let copy = copies.iter().find(|c| c.child_tenant_id == child.id);
                let step = user_step(true, routes.contains_key(slug), copy, child.on_unroute);
                let entry = || PreviewEntry {
                    id: row.id.clone(),
                    name: row.user_name.clone(),
                };
                match step {
                    Some(UserStep::Create | UserStep::Reactivate) => {
                        let c = out.child(slug);
                        c.users_entering += 1;
                        if c.sample_entering.len() < SAMPLE {
                            c.sample_entering.push(entry());
                        }
                    }
                    Some(UserStep::Deactivate | UserStep::Delete) => {
                        let c = out.child(slug);
                        c.users_leaving += 1;
                        if c.sample_leaving.len() < SAMPLE {
                            c.sample_leaving.push(entry());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let mut last = String::new();
    loop {
        let rows = groups::Entity::find()
            .filter(groups::Column::TenantId.eq(tenant.clone()))
            .filter(groups::Column::Id.gt(last.clone()))
            .order_by_asc(groups::Column::Id)
            .limit(CHUNK as u64)
            .all(conn)
            .await
            .map_err(crate::db::db)?;
        let Some(end) = rows.last() else { break };
        last = end.id.clone();
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut existing = copies_by_source(conn, &fanout.super_id, GROUP, &ids)
            .await
            .map_err(TxError::into_error)?;
        for row in &rows {
            out.groups += 1;
            let routes = fanout.rules.route_group(&GroupFacts {
                id: row.id.clone(),
                external_id: row.external_id.clone(),
                display_name: row.display_name.clone(),
            });
            let copies = existing.remove(&row.id).unwrap_or_default();
            for (slug, child) in &fanout.children {
                let copied = copies.iter().any(|c| c.child_tenant_id == child.id);
                match (routes.contains_key(slug), copied) {
                    (true, false) => out.child(slug).groups_entering += 1,
                    (false, true) => out.child(slug).groups_leaving += 1,
                    _ => {}
                }
            }
        }
    }
    out.children.sort_by(|a, b| a.child.cmp(&b.child));
    Ok(out)
}

/// Counts what a run did per child, as a dry run counts it.
pub(crate) fn tally(routed: &[Routed], into: &mut BTreeMap<String, ChildMoves>) {
    for r in routed {
        let c = into.entry(r.child.clone()).or_insert_with(|| ChildMoves {
            child: r.child.clone(),
            ..ChildMoves::default()
        });
        match (r.resource_type, r.action) {
            ("User", CopyAction::Created | CopyAction::Adopted | CopyAction::Reactivated) => {
                c.users_entering += 1
            }
            ("User", CopyAction::Deactivated | CopyAction::Deleted) => c.users_leaving += 1,
            ("Group", CopyAction::Created | CopyAction::Adopted) => c.groups_entering += 1,
            ("Group", CopyAction::Deleted) => c.groups_leaving += 1,
            _ => {}
        }
    }
}

/// What a write routed, as the provisioning log keeps it: one object per
/// copy changed, with the rules that route it (the "why").
pub fn routed_json(routed: &[Routed]) -> Value {
    Value::Array(
        routed
            .iter()
            .map(|r| {
                serde_json::json!({
                    "child": r.child,
                    "resourceType": r.resource_type,
                    "sourceId": r.source_id,
                    "copyId": r.copy_id,
                    "action": r.action.as_str(),
                    "rules": r.rules,
                })
            })
            .collect(),
    )
}

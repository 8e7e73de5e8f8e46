//! Operator-level operations: schema, tenants, tokens, operators.
//!
//! Tokens are `sgt_<token id, 32 hex>_<secret, 64 hex>`. The id half finds
//! the row by primary key, so authentication costs one indexed read and one
//! argon2id verification, however many tokens exist. Only the secret half
//! is hashed (argon2id, PHC string); hashing and verification run on the
//! blocking pool so they never stall the async workers.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use migrations::MigratorTrait;
use rand::RngCore;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::audit;
use crate::db::{Inner, TxError, db, dbx, now, unique_or};
use crate::entity::{auth_revision, operators, tenant_admins, tenants, tokens};
use crate::{
    Authenticated, IssuedToken, NewTenant, NewToken, Principal, Result, Scope, StoreError, Tenant,
    TenantAdminInfo, TenantKind, TenantStatus, TenantUpdate, TokenInfo,
};
use serde_json::json;

/// The prefix of every bearer token this store issues.
const TOKEN_PREFIX: &str = "sgt_";

// ---------------------------------------------------------------------------
// Migrations
//
// Several processes may migrate one database at once: gateway replicas
// starting together, or `scimgate migrate` run beside them. sea-orm's
// migrator reads the pending steps and then applies them one transaction
// each, so two processes both see step N pending, both apply it, and one
// fails ("relation already exists"; on PostgreSQL even the migration
// table's `CREATE TABLE IF NOT EXISTS` can collide). So the whole run
// (reading what is pending included) holds a lock across processes:
// whoever takes it first migrates; the others wait, then find nothing
// pending.

/// The name the PostgreSQL advisory lock key is derived from. Never change
/// it (nor [`fnv1a64`]): a build with another key would not wait for an
/// older build migrating mid-upgrade.
const MIGRATION_LOCK_NAME: &str = "scimgate:migrations";

/// The advisory lock key of migrations (advisory locks are named by a
/// 64-bit number, shared by every application of the database server).
pub(crate) const MIGRATION_LOCK_KEY: i64 = fnv1a64(MIGRATION_LOCK_NAME.as_bytes());

/// How long a process waits for another one's migrations. Real migrations
/// take seconds; a holder this long is stuck (or the lock is held by hand),
/// and failing start-up says so where waiting forever would not.
pub(crate) const MIGRATION_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// How often a waiting process tries the lock again. Advisory and `flock`
/// locks have no fair blocking wait we could bound, so waiters poll.
const MIGRATION_LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// The suffix of the SQLite lock file: `<database file>.migrate.lock`.
const SQLITE_LOCK_SUFFIX: &str = ".migrate.lock";

/// FNV-1a, 64 bit: a stable hash computed at compile time (std's hashers
/// are randomly seeded or may change between releases).
const fn fnv1a64(bytes: &[u8]) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    i64::from_be_bytes(hash.to_be_bytes())
}

/// What keeps other processes' migrations out while this one migrates.
pub(crate) enum MigrationLock {
    /// PostgreSQL: the session-level advisory lock [`MIGRATION_LOCK_KEY`],
    /// taken on a session of its own opened from `url`, on which the
    /// migrations then run.
    Advisory {
        /// The store's database URL (it may hold a password).
        url: String,
    },
    /// SQLite: an exclusive `flock` on this file beside the database. The
    /// database file itself is not locked: SQLite uses POSIX locks on it,
    /// and mixing lock kinds on one file is asking for trouble.
    File(std::path::PathBuf),
    /// Nothing else can reach the database (in-memory SQLite).
    None,
}

impl MigrationLock {
    /// The lock file for the SQLite database `url` names
    /// (`sqlite://PATH[?...]`, as `sqlite::Opener` reads it; a relative
    /// path is relative to the working directory, as SQLite's is).
    pub(crate) fn beside_sqlite(url: &str) -> MigrationLock {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let path = rest.split_once('?').map_or(rest, |(path, _)| path);
        // The connection is opened with URI names allowed: `file:PATH`
        // names the file PATH.
        let path = path.strip_prefix("file:").unwrap_or(path);
        if path.is_empty() || path.starts_with(":memory:") {
            return MigrationLock::None;
        }
        MigrationLock::File(format!("{path}{SQLITE_LOCK_SUFFIX}").into())
    }
}

pub(crate) async fn migrate(inner: &Inner) -> Result<()> {
    match &inner.migration_lock {
        MigrationLock::Advisory { url } => migrate_postgres(url, MIGRATION_LOCK_WAIT).await,
        MigrationLock::File(path) => {
            let lock = lock_file(path, MIGRATION_LOCK_WAIT).await?;
            let ran = migrate_on(&migration_connection(inner).await?).await;
            // Closing the file would release the lock too; unlocking first
            // lets a waiter in even if the handle lingers.
            let released = fs4::FileExt::unlock(&lock).map_err(|e| lock_file_error(path, &e));
            ran.and(released)
        }
        MigrationLock::None => migrate_on(&migration_connection(inner).await?).await,
    }
}

/// Runs the pending migrations on `conn`, each step its own transaction.
async fn migrate_on(conn: &sea_orm::DatabaseConnection) -> Result<()> {
    let failed = |e| match e {
        sea_orm::DbErr::Migration(m) => StoreError::Internal(format!("migration failed: {m}")),
        other => db(other),
    };
    migrations::Migrator::up(conn, None).await.map_err(failed)?;
    // SQLite: the ping returns a COMMIT that failed.
    conn.ping().await.map_err(db)
}

/// PostgreSQL: takes the advisory lock on a session of its own (not the
/// pool: the lock belongs to one session, and pooled statements could run
/// on others), migrates on that session, unlocks and closes it.
async fn migrate_postgres(url: &str, wait: std::time::Duration) -> Result<()> {
    let session = crate::db::postgres_session(url).await?;
    let result = match lock_postgres(&session, wait).await {
        Ok(()) => {
            let ran = migrate_on(&session).await;
            let released = unlock_postgres(&session).await;
            ran.and(released)
        }
        Err(e) => Err(e),
    };
    // Ending the session releases the lock if the unlock did not run.
    let _ = session.close().await;
    result
}

fn advisory(sql: &str) -> sea_orm::Statement {
    sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        sql,
        [MIGRATION_LOCK_KEY.into()],
    )
}

/// Runs a `SELECT pg_..._advisory_...($1) AS done` and reads its boolean.
async fn advisory_call(session: &sea_orm::DatabaseConnection, sql: &str) -> Result<bool> {
    let row = session
        .query_one_raw(advisory(sql))
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::Internal(format!("{sql} returned no row")))?;
    row.try_get::<bool>("", "done").map_err(db)
}

pub(crate) async fn lock_postgres(
    session: &sea_orm::DatabaseConnection,
    wait: std::time::Duration,
) -> Result<()> {
    let what = format!("PostgreSQL advisory lock {MIGRATION_LOCK_KEY}");
    wait_for_lock(&what, wait, || {
        advisory_call(session, "SELECT pg_try_advisory_lock($1) AS done")
    })
    .await
}

async fn unlock_postgres(session: &sea_orm::DatabaseConnection) -> Result<()> {
    if !advisory_call(session, "SELECT pg_advisory_unlock($1) AS done").await? {
        // The session is not the one that took the lock: the connection
        // was lost and replaced mid-run. The migrations' own transactions
        // kept each step whole, but say so.
        tracing::warn!(
            key = MIGRATION_LOCK_KEY,
            "the migration lock was no longer held when migrations finished"
        );
    }
    Ok(())
}

/// SQLite: opens (creating it if need be) and exclusively locks the lock
/// file, waiting at most `wait` for another process to release it. The
/// file stays in place afterwards: deleting it would let a process that
/// opened the old file and one that creates a new one both "hold" a lock.
pub(crate) async fn lock_file(
    path: &std::path::Path,
    wait: std::time::Duration,
) -> Result<std::fs::File> {
    // Opening a local file does not block for long; this runs once, at
    // start-up, before anything else waits on this thread.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| lock_file_error(path, &e))?;
    let what = format!("lock file {}", path.display());
    wait_for_lock(&what, wait, || {
        // A non-blocking `flock`: it returns at once, taken or not.
        std::future::ready(match fs4::FileExt::try_lock(&file) {
            Ok(()) => Ok(true),
            Err(fs4::TryLockError::WouldBlock) => Ok(false),
            Err(fs4::TryLockError::Error(e)) => Err(lock_file_error(path, &e)),
        })
    })
    .await?;
    Ok(file)
}

fn lock_file_error(path: &std::path::Path, e: &std::io::Error) -> StoreError {
    StoreError::Internal(format!(
        "cannot lock the migration lock file {}: {e}",
        path.display()
    ))
}

/// Calls `try_lock` until it reports the lock taken, at most for `wait`,
/// logging once that another instance holds it.
async fn wait_for_lock<F, Fut>(what: &str, wait: std::time::Duration, mut try_lock: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    let mut waited = false;
    loop {
        if try_lock().await? {
            if waited {
                tracing::info!(lock = what, "took the migration lock");
            }
            return Ok(());
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(StoreError::Unavailable(format!(
                "another instance has held the migration lock ({what}) for over {}s; \
                 if no migration is running, find the holder",
                wait.as_secs()
            )));
        }
        if !waited {
            tracing::info!(
                lock = what,
                "another instance is migrating the database; waiting for it to finish"
            );
            waited = true;
        }
        tokio::time::sleep(MIGRATION_LOCK_POLL.min(deadline - now)).await;
    }
}

/// The connection migrations run on: on SQLite one of their own, which
/// runs the migrations' transactions (the pool's readers run none). On
/// PostgreSQL the pool, for callers that need no lock (`migrate` opens a
/// session of its own there).
pub(crate) async fn migration_connection(inner: &Inner) -> Result<sea_orm::DatabaseConnection> {
    match &inner.migrate {
        Some(opener) => crate::sqlite::connection(crate::sqlite::Dedicated::new(opener)?).await,
        None => Ok(inner.conn.clone()),
    }
}

// ---------------------------------------------------------------------------
// Tenants

pub(crate) fn tenant_from_row(row: tenants::Model) -> Result<Tenant> {
    let id = Uuid::parse_str(&row.id)
        .map_err(|_| StoreError::Internal(format!("tenant row has a malformed id {:?}", row.id)))?;
    let kind = match row.kind.as_str() {
        "standard" => TenantKind::Standard,
        "super" => TenantKind::Super,
        other => {
            return Err(StoreError::Internal(format!(
                "tenant {id} has an unknown kind {other:?}"
            )));
        }
    };
    let status = match row.status.as_str() {
        "active" => TenantStatus::Active,
        "suspended" => TenantStatus::Suspended,
        other => {
            return Err(StoreError::Internal(format!(
                "tenant {id} has an unknown status {other:?}"
            )));
        }
    };
    Ok(Tenant {
        id,
        slug: row.slug,
        name: row.name,
        kind,
        status,
        created_at: row.created_at,
    })
}

fn kind_str(kind: TenantKind) -> &'static str {
    match kind {
        TenantKind::Standard => "standard",
        TenantKind::Super => "super",
    }
}

fn status_str(status: TenantStatus) -> &'static str {
    match status {
        TenantStatus::Active => "active",
        TenantStatus::Suspended => "suspended",
    }
}

/// A slug is a DNS-label-like name: it appears in URLs and must not need
/// escaping or case folding anywhere.
pub(crate) fn validate_slug(slug: &str) -> Result<()> {
    let ok = (1..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidValue(format!(
            "invalid tenant slug {slug:?}: use 1 to 63 lowercase letters, digits and '-', \
             not starting or ending with '-'"
        )))
    }
}

pub(crate) async fn create_tenant(inner: &Inner, new: NewTenant, actor: &str) -> Result<Tenant> {
    validate_slug(&new.slug)?;
    if new.name.trim().is_empty() {
        return Err(StoreError::InvalidValue(
            "tenant name must not be empty".into(),
        ));
    }
    let at = now();
    let row = tenants::Model {
        id: Uuid::new_v4().to_string(),
        slug: new.slug,
        name: new.name,
        kind: kind_str(new.kind).into(),
        status: status_str(TenantStatus::Active).into(),
        created_at: at,
        updated_at: at,
    };
    let am = tenants::ActiveModel {
        id: Set(row.id.clone()),
        slug: Set(row.slug.clone()),
        name: Set(row.name.clone()),
        kind: Set(row.kind.clone()),
        status: Set(row.status.clone()),
        created_at: Set(at),
        updated_at: Set(at),
    };
    let slug = row.slug.clone();
    let tenant_id = id_of(&row.id)?;
    let detail = json!({"slug": row.slug, "name": row.name, "kind": row.kind});
    write_txn!(inner, [actor], [am, slug, detail], txn => {
        tenants::Entity::insert(am.clone())
            .exec_without_returning(txn)
            .await
            .map_err(|e| {
                unique_or(e, || format!("tenant slug '{slug}' is already taken"))
            })?;
        audit::write(txn, Some(tenant_id), actor, "tenant.create", slug, detail.clone()).await
    })?;
    tenant_from_row(row)
}

pub(crate) async fn tenant_by_slug(inner: &Inner, slug: &str) -> Result<Option<Tenant>> {
    tenants::Entity::find()
        .filter(tenants::Column::Slug.eq(slug))
        .one(&inner.conn)
        .await
        .map_err(db)?
        .map(tenant_from_row)
        .transpose()
}

pub(crate) async fn tenant_by_id(inner: &Inner, id: Uuid) -> Result<Option<Tenant>> {
    tenants::Entity::find_by_id(id.to_string())
        .one(&inner.conn)
        .await
        .map_err(db)?
        .map(tenant_from_row)
        .transpose()
}

pub(crate) async fn list_tenants(
    inner: &Inner,
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<Tenant>)> {
    let total = tenants::Entity::find()
        .count(&inner.conn)
        .await
        .map_err(db)?;
    if limit == 0 {
        return Ok((total, Vec::new()));
    }
    let rows = tenants::Entity::find()
        .order_by_asc(tenants::Column::Slug)
        .offset(offset)
        .limit(limit)
        .all(&inner.conn)
        .await
        .map_err(db)?;
    let tenants = rows
        .into_iter()
        .map(tenant_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok((total, tenants))
}

pub(crate) async fn update_tenant(
    inner: &Inner,
    id: Uuid,
    update: TenantUpdate,
    actor: &str,
) -> Result<Tenant> {
    if let Some(name) = &update.name
        && name.trim().is_empty()
    {
        return Err(StoreError::InvalidValue(
            "tenant name must not be empty".into(),
        ));
    }
    let row = write_txn!(inner, [actor], [update], txn => {
        let Some(row) = tenants::Entity::find_by_id(id.to_string())
            .lock_exclusive()
            .one(txn)
            .await
            .map_err(dbx)?
        else {
            return Err(StoreError::NotFound(format!("tenant {id}")).into());
        };
        let name = update.name.clone().unwrap_or_else(|| row.name.clone());
        let status = update
            .status
            .map(|s| status_str(s).to_owned())
            .unwrap_or_else(|| row.status.clone());
        if name == row.name && status == row.status {
            return Ok(row);
        }
        let at = now();
        tenants::Entity::update_many()
            .col_expr(tenants::Column::Name, Expr::value(name.clone()))
            .col_expr(tenants::Column::Status, Expr::value(status.clone()))
            .col_expr(tenants::Column::UpdatedAt, Expr::value(at))
            .filter(tenants::Column::Id.eq(id.to_string()))
            .exec(txn)
            .await
            .map_err(dbx)?;
        if status != row.status {
            // Cached tokens of a suspended tenant must stop working now.
            bump_auth_revision(txn).await?;
        }
        let detail = json!({
            "before": {"name": row.name, "status": row.status},
            "after": {"name": name, "status": status},
        });
        audit::write(txn, Some(id), actor, "tenant.update", &row.slug, detail).await?;
        Ok(tenants::Model {
            name,
            status,
            updated_at: at,
            ..row
        })
    })?;
    tenant_from_row(row)
}

pub(crate) async fn delete_tenant(inner: &Inner, id: Uuid, actor: &str) -> Result<()> {
    let backend = inner.backend;
    write_txn!(inner, [actor], [], txn => {
        let Some(row) = tenants::Entity::find_by_id(id.to_string())
            .lock_exclusive()
            .one(txn)
            .await
            .map_err(dbx)?
        else {
            return Err(StoreError::NotFound(format!("tenant {id}")).into());
        };
        // Its applications learn that every user and group is gone; the
        // events outlive the tenant (the log has no foreign key to it).
        let events = farewell_events(txn, id).await?;
        crate::events::write_for(backend, txn, id, events).await?;
        // Everything else the tenant owns goes with it (ON DELETE CASCADE).
        tenants::Entity::delete_many()
            .filter(tenants::Column::Id.eq(id.to_string()))
            .exec(txn)
            .await
            .map_err(dbx)?;
        bump_auth_revision(txn).await?;
        let detail = json!({"slug": row.slug, "name": row.name});
        audit::write(txn, Some(id), actor, "tenant.delete", &row.slug, detail).await
    })
}

/// A `group.deleted` for each of the tenant's groups, then a
/// `user.deleted` for each user, marked `"reason": "tenant_deleted"`.
async fn farewell_events(
    txn: &DatabaseTransaction,
    tenant: Uuid,
) -> Result<Vec<crate::events::Event>, TxError> {
    use crate::entity::{groups, users};
    use crate::events::{Event, ResourceKind};
    let key = tenant.to_string();
    let reason = || json!({"reason": "tenant_deleted"});
    let parse = |text: &str| serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    let mut out = Vec::new();
    let groups: Vec<(String, i64, String)> = groups::Entity::find()
        .select_only()
        .columns([
            groups::Column::Id,
            groups::Column::Version,
            groups::Column::Document,
        ])
        .filter(groups::Column::TenantId.eq(key.clone()))
        .order_by_asc(groups::Column::Id)
        .into_tuple()
        .all(txn)
        .await
        .map_err(dbx)?;
    for (gid, version, doc) in groups {
        let version = crate::directory::version(version, "group")?;
        out.push(Event::deleted(
            ResourceKind::Group,
            &gid,
            version,
            &parse(&doc),
            reason(),
        ));
    }
    let users: Vec<(String, i64, String)> = users::Entity::find()
        .select_only()
        .columns([
            users::Column::Id,
            users::Column::Version,
            users::Column::Document,
        ])
        .filter(users::Column::TenantId.eq(key))
        .order_by_asc(users::Column::Id)
        .into_tuple()
        .all(txn)
        .await
        .map_err(dbx)?;
    for (uid, version, doc) in users {
        let version = crate::directory::version(version, "user")?;
        out.push(Event::deleted(
            ResourceKind::User,
            &uid,
            version,
            &parse(&doc),
            reason(),
        ));
    }
    Ok(out)
}

pub(crate) async fn bump_auth_revision(txn: &impl ConnectionTrait) -> Result<(), TxError> {
    auth_revision::Entity::update_many()
        .col_expr(
            auth_revision::Column::Revision,
            Expr::col(auth_revision::Column::Revision).add(1),
        )
        .filter(auth_revision::Column::Id.eq(1))
        .exec(txn)
        .await
        .map_err(dbx)?;
    Ok(())
}

pub(crate) async fn auth_revision(inner: &Inner) -> Result<i64> {
    let row = auth_revision::Entity::find_by_id(1)
        .one(&inner.conn)
        .await
        .map_err(db)?;
    row.map(|r| r.revision)
        .ok_or_else(|| StoreError::Internal("auth_revision row is missing".into()))
}

// ---------------------------------------------------------------------------
// Tokens

fn scopes_to_str(scopes: &[Scope]) -> String {
    let mut out: Vec<&str> = Vec::with_capacity(scopes.len());
    for s in scopes {
        if !out.contains(&s.as_str()) {
            out.push(s.as_str());
        }
    }
    out.join(" ")
}

fn scopes_from_str(s: &str) -> Vec<Scope> {
    s.split_whitespace()
        .filter_map(|word| match word {
            "scim:write" => Some(Scope::ScimWrite),
            "scim:read" => Some(Scope::ScimRead),
            "events:read" => Some(Scope::EventsRead),
            // A scope written by a newer version grants nothing here.
            other => {
                tracing::warn!(scope = other, "ignoring unknown token scope");
                None
            }
        })
        .collect()
}

fn token_from_row(row: &tokens::Model) -> Result<TokenInfo> {
    let parse = |s: &str| {
        Uuid::parse_str(s)
            .map_err(|_| StoreError::Internal(format!("token row has a malformed id {s:?}")))
    };
    Ok(TokenInfo {
        id: parse(&row.id)?,
        tenant_id: parse(&row.tenant_id)?,
        name: row.name.clone(),
        scopes: scopes_from_str(&row.scopes),
        created_at: row.created_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Splits a bearer token into its id and secret; `None` if it is not one
/// of ours.
fn parse_token(bearer: &str) -> Option<(Uuid, &str)> {
    let rest = bearer.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.len() != 64 {
        return None;
    }
    if !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((Uuid::parse_str(id).ok()?, secret))
}

/// Hashes a secret with argon2id (default parameters) on the blocking pool.
pub(crate) async fn hash_secret(secret: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| StoreError::Internal(format!("argon2 salt: {e}")))?;
        Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| StoreError::Internal(format!("argon2 hash: {e}")))
    })
    .await
    .map_err(|e| StoreError::Internal(format!("hashing task failed: {e}")))?
}

/// Verifies a secret against a PHC string on the blocking pool.
pub(crate) async fn verify_secret(secret: String, phc: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let hash = PasswordHash::new(&phc)
            .map_err(|e| StoreError::Internal(format!("stored hash is malformed: {e}")))?;
        Ok(Argon2::default()
            .verify_password(secret.as_bytes(), &hash)
            .is_ok())
    })
    .await
    .map_err(|e| StoreError::Internal(format!("verification task failed: {e}")))?
}

/// A token ready to insert: its row, and the secret shown once.
pub(crate) struct PreparedToken {
    row: tokens::Model,
    id: Uuid,
    secret: String,
}

impl PreparedToken {
    /// The token's id.
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }
}

/// Checks a new token and hashes its fresh secret (argon2, off the
/// transaction), so that inserting it can be part of a larger write.
pub(crate) async fn prepare_token(tenant: &Tenant, new: NewToken) -> Result<PreparedToken> {
    if new.scopes.is_empty() {
        return Err(StoreError::InvalidValue(
            "a token needs at least one scope".into(),
        ));
    }
    if new.name.trim().is_empty() {
        return Err(StoreError::InvalidValue(
            "token name must not be empty".into(),
        ));
    }
    let id = Uuid::new_v4();
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let secret = hex(&raw);
    let hash = hash_secret(secret.clone()).await?;
    let row = tokens::Model {
        id: id.to_string(),
        tenant_id: tenant.id.to_string(),
        name: new.name,
        secret_hash: hash,
        scopes: scopes_to_str(&new.scopes),
        created_at: now(),
        expires_at: new.expires_at,
        revoked_at: None,
    };
    Ok(PreparedToken { row, id, secret })
}

/// Inserts a prepared token and audits it, inside `txn`.
pub(crate) async fn insert_token(
    txn: &DatabaseTransaction,
    token: &PreparedToken,
    actor: &str,
) -> Result<(), TxError> {
    let row = &token.row;
    let tenant_id = Uuid::parse_str(&row.tenant_id)
        .map_err(|_| TxError::Fail(StoreError::Internal("malformed tenant id".into())))?;
    let am = tokens::ActiveModel {
        id: Set(row.id.clone()),
        tenant_id: Set(row.tenant_id.clone()),
        name: Set(row.name.clone()),
        secret_hash: Set(row.secret_hash.clone()),
        scopes: Set(row.scopes.clone()),
        created_at: Set(row.created_at),
        expires_at: Set(row.expires_at),
        revoked_at: Set(None),
    };
    let detail = json!({
        "name": row.name,
        "scopes": row.scopes,
        "expires_at": row.expires_at,
    });
    tokens::Entity::insert(am)
        .exec_without_returning(txn)
        .await
        .map_err(|e| match crate::db::sql_err(&e) {
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => {
                TxError::Fail(StoreError::NotFound(format!("tenant {tenant_id}")))
            }
            _ => dbx(e),
        })?;
    let target = format!("token {}", token.id);
    audit::write(txn, Some(tenant_id), actor, "token.issue", &target, detail).await
}

impl PreparedToken {
    /// What the caller gets once the token is committed.
    pub(crate) fn issued(&self) -> Result<IssuedToken> {
        Ok(IssuedToken {
            info: token_from_row(&self.row)?,
            secret: format!("{TOKEN_PREFIX}{}_{}", self.id.simple(), self.secret),
        })
    }
}

pub(crate) async fn issue_token(
    inner: &Inner,
    tenant: &Tenant,
    new: NewToken,
    actor: &str,
) -> Result<IssuedToken> {
    let token = std::sync::Arc::new(prepare_token(tenant, new).await?);
    let shared = token.clone();
    write_txn!(inner, [actor], [shared], txn => {
        insert_token(txn, shared, actor).await
    })?;
    token.issued()
}

pub(crate) async fn list_tokens(inner: &Inner, tenant: &Tenant) -> Result<Vec<TokenInfo>> {
    tokens::Entity::find()
        .filter(tokens::Column::TenantId.eq(tenant.id.to_string()))
        .order_by_asc(tokens::Column::CreatedAt)
        .order_by_asc(tokens::Column::Id)
        .all(&inner.conn)
        .await
        .map_err(db)?
        .iter()
        .map(token_from_row)
        .collect()
}

pub(crate) async fn revoke_token(
    inner: &Inner,
    tenant: &Tenant,
    token_id: Uuid,
    actor: &str,
) -> Result<TokenInfo> {
    let tenant_id = tenant.id;
    let row = write_txn!(inner, [actor], [], txn => {
        let Some(row) = tokens::Entity::find_by_id(token_id.to_string())
            .filter(tokens::Column::TenantId.eq(tenant_id.to_string()))
            .lock_exclusive()
            .one(txn)
            .await
            .map_err(dbx)?
        else {
            return Err(StoreError::NotFound(format!("token {token_id}")).into());
        };
        if row.revoked_at.is_some() {
            return Ok(row);
        }
        let at = now();
        tokens::Entity::update_many()
            .col_expr(tokens::Column::RevokedAt, Expr::value(at))
            .filter(tokens::Column::Id.eq(token_id.to_string()))
            .exec(txn)
            .await
            .map_err(dbx)?;
        bump_auth_revision(txn).await?;
        let target = format!("token {token_id}");
        let detail = json!({"name": row.name});
        audit::write(txn, Some(tenant_id), actor, "token.revoke", &target, detail).await?;
        Ok(tokens::Model {
            revoked_at: Some(at),
            ..row
        })
    })?;
    token_from_row(&row)
}

pub(crate) async fn authenticate(inner: &Inner, bearer: &str) -> Result<Option<Authenticated>> {
    let Some((token_id, secret)) = parse_token(bearer.trim()) else {
        return Ok(None);
    };
    let Some(row) = tokens::Entity::find_by_id(token_id.to_string())
        .one(&inner.conn)
        .await
        .map_err(db)?
    else {
        return Ok(None);
    };
    if row.revoked_at.is_some() || is_expired(row.expires_at, Utc::now()) {
        return Ok(None);
    }
    if !verify_secret(secret.to_owned(), row.secret_hash.clone()).await? {
        return Ok(None);
    }
    let Some(tenant) = tenants::Entity::find_by_id(row.tenant_id.clone())
        .one(&inner.conn)
        .await
        .map_err(db)?
    else {
        // Deleted between the two reads.
        return Ok(None);
    };
    let info = token_from_row(&row)?;
    let fed_by = crate::fanout::super_slug_of(&inner.conn, &tenant.id).await?;
    Ok(Some(Authenticated {
        tenant: tenant_from_row(tenant)?,
        token_id,
        scopes: info.scopes,
        expires_at: row.expires_at,
        fed_by,
    }))
}

fn is_expired(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_some_and(|e| e <= now)
}

// ---------------------------------------------------------------------------
// Operators

pub(crate) async fn count_operators(inner: &Inner) -> Result<u64> {
    operators::Entity::find()
        .count(&inner.conn)
        .await
        .map_err(db)
}

pub(crate) async fn create_operator(
    inner: &Inner,
    email: &str,
    password: &str,
    actor: &str,
) -> Result<Uuid> {
    let email = email.trim();
    if email.is_empty() || !email.contains('@') {
        return Err(StoreError::InvalidValue(
            "operator email must be an e-mail address".into(),
        ));
    }
    if password.is_empty() {
        return Err(StoreError::InvalidValue(
            "operator password must not be empty".into(),
        ));
    }
    let hash = hash_secret(password.to_owned()).await?;
    let id = Uuid::new_v4();
    let email_norm = crate::columns::lower(email);
    let am = operators::ActiveModel {
        id: Set(id.to_string()),
        email: Set(email.to_owned()),
        email_norm: Set(email_norm),
        password_hash: Set(hash),
        created_at: Set(now()),
    };
    write_txn!(inner, [email, actor], [am], txn => {
        operators::Entity::insert(am.clone())
            .exec_without_returning(txn)
            .await
            .map_err(|e| unique_or(e, || format!("operator '{email}' already exists")))?;
        audit::write(txn, None, actor, "operator.create", email, json!({"id": id})).await
    })?;
    Ok(id)
}

/// Checks an e-mail and password pair. argon2 runs whether or not the
/// account exists, so the answer's timing does not reveal which e-mail
/// addresses have accounts.
async fn check_password(found: Option<(String, String)>, password: &str) -> Result<Option<String>> {
    let (id, hash) = match found {
        Some(pair) => pair,
        None => (String::new(), dummy_hash().await?),
    };
    let ok = verify_secret(password.to_owned(), hash).await?;
    Ok((ok && !id.is_empty()).then_some(id))
}

/// A hash of a random secret, made once per process: what a login for an
/// unknown account is verified against.
async fn dummy_hash() -> Result<String> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_try_init(|| async {
            let mut raw = [0u8; 16];
            rand::rng().fill_bytes(&mut raw);
            hash_secret(hex(&raw)).await
        })
        .await
        .cloned()
}

pub(crate) async fn verify_operator(
    inner: &Inner,
    email: &str,
    password: &str,
) -> Result<Option<Principal>> {
    let norm = crate::columns::lower(email.trim());
    let row = operators::Entity::find()
        .filter(operators::Column::EmailNorm.eq(norm))
        .all(&inner.conn)
        .await
        .map_err(db)?
        .into_iter()
        .next();
    let email = row.as_ref().map(|r| r.email.clone());
    let found = row.map(|r| (r.id, r.password_hash));
    Ok(check_password(found, password)
        .await?
        .zip(email)
        .map(|(id, email)| Principal {
            id,
            email,
            tenant: None,
        }))
}

pub(crate) async fn verify_tenant_admin(
    inner: &Inner,
    tenant: &Tenant,
    email: &str,
    password: &str,
) -> Result<Option<Principal>> {
    let norm = crate::columns::lower(email.trim());
    let row = tenant_admins::Entity::find()
        .filter(tenant_admins::Column::TenantId.eq(tenant.id.to_string()))
        .filter(tenant_admins::Column::EmailNorm.eq(norm))
        .all(&inner.conn)
        .await
        .map_err(db)?
        .into_iter()
        .next();
    let email = row.as_ref().map(|r| r.email.clone());
    let found = row.map(|r| (r.id, r.password_hash));
    Ok(check_password(found, password)
        .await?
        .zip(email)
        .map(|(id, email)| Principal {
            id,
            email,
            tenant: Some(tenant.clone()),
        }))
}

fn check_new_login(email: &str, password: &str) -> Result<()> {
    if email.is_empty() || !email.contains('@') {
        return Err(StoreError::InvalidValue(
            "email must be an e-mail address".into(),
        ));
    }
    if password.chars().count() < 12 {
        return Err(StoreError::InvalidValue(
            "password must have at least 12 characters".into(),
        ));
    }
    Ok(())
}

pub(crate) async fn create_tenant_admin(
    inner: &Inner,
    tenant: &Tenant,
    email: &str,
    password: &str,
    actor: &str,
) -> Result<TenantAdminInfo> {
    let email = email.trim();
    check_new_login(email, password)?;
    let hash = hash_secret(password.to_owned()).await?;
    let info = TenantAdminInfo {
        id: Uuid::new_v4(),
        tenant_id: tenant.id,
        email: email.to_owned(),
        created_at: now(),
    };
    let am = tenant_admins::ActiveModel {
        id: Set(info.id.to_string()),
        tenant_id: Set(tenant.id.to_string()),
        email: Set(email.to_owned()),
        email_norm: Set(crate::columns::lower(email)),
        password_hash: Set(hash),
        created_at: Set(info.created_at),
    };
    let tenant_id = tenant.id;
    let created = info.clone();
    write_txn!(inner, [actor], [am, created], txn => {
        tenant_admins::Entity::insert(am.clone())
            .exec_without_returning(txn)
            .await
            .map_err(|e| match crate::db::sql_err(&e) {
                Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => TxError::Fail(
                    StoreError::NotFound(format!("tenant {tenant_id}")),
                ),
                _ => unique_or(e, || {
                    format!("tenant admin '{}' already exists", created.email)
                }),
            })?;
        let detail = json!({"id": created.id});
        audit::write(txn, Some(tenant_id), actor, "tenant_admin.create", &created.email, detail)
            .await
    })?;
    Ok(info)
}

pub(crate) async fn list_tenant_admins(
    inner: &Inner,
    tenant: &Tenant,
) -> Result<Vec<TenantAdminInfo>> {
    tenant_admins::Entity::find()
        .filter(tenant_admins::Column::TenantId.eq(tenant.id.to_string()))
        .order_by_asc(tenant_admins::Column::EmailNorm)
        .all(&inner.conn)
        .await
        .map_err(db)?
        .into_iter()
        .map(|r| {
            Ok(TenantAdminInfo {
                id: id_of(&r.id)?,
                tenant_id: tenant.id,
                email: r.email,
                created_at: r.created_at,
            })
        })
        .collect()
}

pub(crate) async fn delete_tenant_admin(
    inner: &Inner,
    tenant: &Tenant,
    id: Uuid,
    actor: &str,
) -> Result<()> {
    let tenant_id = tenant.id;
    write_txn!(inner, [actor], [], txn => {
        let Some(row) = tenant_admins::Entity::find_by_id(id.to_string())
            .filter(tenant_admins::Column::TenantId.eq(tenant_id.to_string()))
            .one(txn)
            .await
            .map_err(dbx)?
        else {
            return Err(StoreError::NotFound(format!("tenant admin {id}")).into());
        };
        tenant_admins::Entity::delete_many()
            .filter(tenant_admins::Column::Id.eq(id.to_string()))
            .exec(txn)
            .await
            .map_err(dbx)?;
        audit::write(txn, Some(tenant_id), actor, "tenant_admin.delete", &row.email, json!({"id": id}))
            .await
    })
}

fn id_of(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| StoreError::Internal(format!("malformed id {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn slugs() {
        for ok in ["a", "acme", "acme-corp", "a1", "0", &"x".repeat(63)] {
            assert!(validate_slug(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Acme",
            "a_b",
            "a.b",
            "ä",
            &"x".repeat(64),
            "a b",
        ] {
            assert!(
                matches!(validate_slug(bad), Err(StoreError::InvalidValue(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn token_format_round_trips_and_rejects_garbage() {
        let id = Uuid::new_v4();
        let secret = "ab".repeat(32);
        let token = format!("sgt_{}_{secret}", id.simple());
        assert_eq!(parse_token(&token), Some((id, secret.as_str())));
        for bad in [
            "",
            "sgt_",
            "Bearer x",
            &format!("sgx_{}_{secret}", id.simple()),
            &format!("sgt_{}_{}", id.simple(), &secret[1..]),
            &format!("sgt_{}_{}zz", id.simple(), &secret[2..]),
            &format!("sgt_{}_{secret}", id.hyphenated()),
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn scopes_round_trip_without_duplicates() {
        let s = scopes_to_str(&[Scope::ScimWrite, Scope::ScimRead, Scope::ScimWrite]);
        assert_eq!(s, "scim:write scim:read");
        assert_eq!(scopes_from_str(&s), vec![Scope::ScimWrite, Scope::ScimRead]);
        assert_eq!(
            scopes_from_str("scim:write admin:all"),
            vec![Scope::ScimWrite]
        );
    }

    #[test]
    fn migration_lock_key_never_changes() {
        // Builds of every version must agree on the key, or an upgrade's
        // new pods would not wait for old ones (and vice versa).
        assert_eq!(MIGRATION_LOCK_KEY, fnv1a64(b"scimgate:migrations"));
        assert_eq!(MIGRATION_LOCK_KEY, -7_054_248_419_937_969_415);
        // FNV-1a's published test vector.
        assert_eq!(fnv1a64(b"a") as u64, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn sqlite_lock_file_sits_beside_the_database() {
        let file = |url| match MigrationLock::beside_sqlite(url) {
            MigrationLock::File(path) => Some(path),
            _ => None,
        };
        assert_eq!(
            file("sqlite:///var/lib/scimgate/scimgate.db?mode=rwc"),
            Some("/var/lib/scimgate/scimgate.db.migrate.lock".into())
        );
        assert_eq!(
            file("sqlite://./data/x.db"),
            Some("./data/x.db.migrate.lock".into())
        );
        assert_eq!(file("sqlite:x.db"), Some("x.db.migrate.lock".into()));
        assert_eq!(
            file("sqlite://file:/srv/x.db?mode=rw"),
            Some("/srv/x.db.migrate.lock".into())
        );
        assert!(matches!(
            MigrationLock::beside_sqlite("sqlite::memory:"),
            MigrationLock::None
        ));
    }

    #[tokio::test]
    async fn a_held_lock_file_makes_others_wait_and_then_fail() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db.migrate.lock");
        let held = lock_file(&path, Duration::ZERO).await.expect("first lock");
        // Another handle (as another process would have) cannot take it.
        let started = std::time::Instant::now();
        let waited = lock_file(&path, Duration::from_millis(500)).await;
        assert!(
            matches!(waited, Err(StoreError::Unavailable(_))),
            "{waited:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(500));
        // A waiter gets it as soon as the holder lets go.
        let waiter = tokio::spawn({
            let path = path.clone();
            async move { lock_file(&path, Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
        let second = waiter.await.expect("join").expect("second lock");
        drop(second);
        // The file stays, for the next run.
        assert!(path.exists());
    }

    #[tokio::test]
    async fn a_held_advisory_lock_makes_others_wait_and_then_fail() {
        let db = testkit::fresh_database(testkit::TestDb::Postgres).await;
        let holder = crate::db::postgres_session(&db.url).await.expect("session");
        lock_postgres(&holder, Duration::ZERO)
            .await
            .expect("first lock");
        let other = crate::db::postgres_session(&db.url).await.expect("session");
        let waited = lock_postgres(&other, Duration::from_millis(500)).await;
        assert!(
            matches!(waited, Err(StoreError::Unavailable(_))),
            "{waited:?}"
        );
        // Ending the holder's session releases its lock.
        holder.close().await.expect("close");
        lock_postgres(&other, Duration::from_secs(10))
            .await
            .expect("second lock");
        unlock_postgres(&other).await.expect("unlock");
        other.close().await.expect("close");
    }
}

/// Tenants whose slug or name contains `search` (case-insensitively; all
/// of them without one), by slug, with the total count.
pub(crate) async fn search_tenants(
    inner: &Inner,
    search: Option<&str>,
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<Tenant>)> {
    use sea_orm::sea_query::{Func, LikeExpr};
    let mut query = tenants::Entity::find();
    if let Some(text) = search.map(str::trim).filter(|t| !t.is_empty()) {
        let escaped: String = text
            .to_lowercase()
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let pattern = || LikeExpr::new(format!("%{escaped}%")).escape('\\');
        query = query.filter(
            sea_orm::Condition::any()
                .add(Expr::expr(Func::lower(Expr::col(tenants::Column::Slug))).like(pattern()))
                .add(Expr::expr(Func::lower(Expr::col(tenants::Column::Name))).like(pattern())),
        );
    }
    let total = query.clone().count(&inner.conn).await.map_err(db)?;
    if limit == 0 {
        return Ok((total, Vec::new()));
    }
    let rows = query
        .order_by_asc(tenants::Column::Slug)
        .offset(offset)
        .limit(limit)
        .all(&inner.conn)
        .await
        .map_err(db)?;
    let tenants = rows
        .into_iter()
        .map(tenant_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok((total, tenants))
}

/// What an operator's tenant list shows about one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantActivity {
    /// Users in the tenant's directory.
    pub users: u64,
    /// The last SCIM request the provisioning log recorded.
    pub last_activity: Option<DateTime<Utc>>,
    /// Delivery targets.
    pub targets: u64,
    /// Targets disabled after sustained failure (or by an admin).
    pub disabled_targets: u64,
    /// Enabled targets currently failing.
    pub failing_targets: u64,
    /// The super tenant feeding this tenant, by slug.
    pub super_tenant: Option<String>,
}

/// [`TenantActivity`] of each tenant in `ids` (a page of a list): one
/// grouped query each for users, targets and super tenants, and one
/// indexed seek per tenant for its last request (a grouped `max` would
/// read every log row of the page's tenants).
pub(crate) async fn tenant_activity(
    inner: &Inner,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, TenantActivity>> {
    use crate::entity::{provisioning_log, super_links, targets, users};
    use std::collections::HashMap;
    let keys: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let users: HashMap<String, i64> = users::Entity::find()
        .select_only()
        .column(users::Column::TenantId)
        .column_as(users::Column::Id.count(), "n")
        .filter(users::Column::TenantId.is_in(keys.clone()))
        .group_by(users::Column::TenantId)
        .into_tuple::<(String, i64)>()
        .all(&inner.conn)
        .await
        .map_err(db)?
        .into_iter()
        .collect();
    // (enabled, failing) of every target of the page's tenants.
    let mut health: HashMap<String, Vec<(bool, bool)>> = HashMap::new();
    for (tenant, enabled, failing_since) in targets::Entity::find()
        .select_only()
        .column(targets::Column::TenantId)
        .column(targets::Column::Enabled)
        .column(targets::Column::FailingSince)
        .filter(targets::Column::TenantId.is_in(keys.clone()))
        .into_tuple::<(String, bool, Option<DateTime<Utc>>)>()
        .all(&inner.conn)
        .await
        .map_err(db)?
    {
        health
            .entry(tenant)
            .or_default()
            .push((enabled, failing_since.is_some()));
    }
    let links: Vec<(String, String)> = super_links::Entity::find()
        .select_only()
        .column(super_links::Column::ChildTenantId)
        .column(super_links::Column::SuperTenantId)
        .filter(super_links::Column::ChildTenantId.is_in(keys.clone()))
        .into_tuple()
        .all(&inner.conn)
        .await
        .map_err(db)?;
    let parents: HashMap<String, String> = if links.is_empty() {
        HashMap::new()
    } else {
        tenants::Entity::find()
            .select_only()
            .column(tenants::Column::Id)
            .column(tenants::Column::Slug)
            .filter(tenants::Column::Id.is_in(links.iter().map(|(_, p)| p.clone())))
            .into_tuple::<(String, String)>()
            .all(&inner.conn)
            .await
            .map_err(db)?
            .into_iter()
            .collect()
    };
    let parent_of: HashMap<String, String> = links
        .into_iter()
        .filter_map(|(child, parent)| parents.get(&parent).map(|slug| (child, slug.clone())))
        .collect();
    let mut out = HashMap::with_capacity(ids.len());
    for (id, key) in ids.iter().zip(&keys) {
        let last_activity: Option<DateTime<Utc>> = provisioning_log::Entity::find()
            .select_only()
            .column(provisioning_log::Column::At)
            .filter(provisioning_log::Column::TenantId.eq(key.as_str()))
            .order_by_desc(provisioning_log::Column::At)
            .limit(1)
            .into_tuple()
            .one(&inner.conn)
            .await
            .map_err(db)?;
        let targets = health.remove(key).unwrap_or_default();
        out.insert(
            *id,
            TenantActivity {
                users: u64::try_from(users.get(key).copied().unwrap_or(0)).unwrap_or(0),
                last_activity,
                targets: targets.len() as u64,
                disabled_targets: targets.iter().filter(|(enabled, _)| !enabled).count() as u64,
                failing_targets: targets
                    .iter()
                    .filter(|(enabled, failing)| *enabled && *failing)
                    .count() as u64,
                super_tenant: parent_of.get(key).cloned(),
            },
        );
    }
    Ok(out)
}

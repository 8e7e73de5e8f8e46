//! Planner statistics on PostgreSQL, kept fresh while a directory grows
//! fast.
//!
//! Each connection caches the plans of its prepared statements, made with
//! the statistics of the moment. A plan made while a table was empty (the
//! first minute of a new deployment, when an IdP's initial cycle fills it)
//! scans the whole table where an index would find one row, and is kept
//! until the table is next analyzed. Autovacuum analyzes by the rule
//! below, but checks once a minute (`autovacuum_naptime`), and a 5,000-user
//! initial cycle takes seconds: its lookups ran 7x slower than after an
//! `ANALYZE`. [`Store::refresh_statistics`] applies autovacuum's default
//! rule to the tables SCIM traffic reads, more often. An `ANALYZE` samples
//! at most 30,000 rows and invalidates the plans it makes stale, so it is
//! cheap and needs no coordination between processes. SQLite plans each
//! statement without per-table statistics (none are gathered), so there it
//! does nothing.

use sea_orm::{ConnectionTrait, Statement};

use crate::db::db;
use crate::{Backend, Result, Store};

/// The tables whose plans SCIM requests and deliveries depend on.
const TABLES: [&str; 7] = [
    "users",
    "user_emails",
    "user_roles",
    "groups",
    "memberships",
    "event_log",
    "deliveries",
];

/// Autovacuum's defaults (`autovacuum_analyze_threshold`,
/// `autovacuum_analyze_scale_factor`): analyze once more rows changed
/// since the last analysis than 50 plus a tenth of the rows it counted.
const THRESHOLD: i64 = 50;
const SCALE: f64 = 0.1;

impl Store {
    /// Analyzes the tables (of [`TABLES`]) that changed enough since their
    /// last analysis, by autovacuum's rule (module documentation); returns
    /// their names. Nothing on SQLite.
    pub async fn refresh_statistics(&self) -> Result<Vec<String>> {
        if self.backend() != Backend::Postgres {
            return Ok(Vec::new());
        }
        let conn = &self.inner.conn;
        let list = TABLES
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        // `reltuples` is -1 before a table's first analysis.
        let sql = format!(
            "SELECT s.relname::text AS name FROM pg_stat_user_tables s \
             JOIN pg_class c ON c.oid = s.relid \
             WHERE s.schemaname = current_schema() AND s.relname IN ({list}) \
             AND s.n_mod_since_analyze > {THRESHOLD} + {SCALE} * greatest(c.reltuples, 0)"
        );
        let rows = conn
            .query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
            .await
            .map_err(db)?;
        let mut analyzed = Vec::new();
        for row in rows {
            let name: String = row.try_get("", "name").map_err(db)?;
            // Only names of `TABLES` come back, so quoting them is safe.
            if TABLES.contains(&name.as_str()) {
                conn.execute_unprepared(&format!("ANALYZE \"{name}\""))
                    .await
                    .map_err(db)?;
                analyzed.push(name);
            }
        }
        Ok(analyzed)
    }
}

//! Several instances starting at once against one database (three gateway
//! pods, or `scimgate migrate` run twice): every one must succeed, and each
//! migration must be applied exactly once. Without a cross-process lock two
//! processes both see a step pending and both apply it, and one fails
//! ("relation already exists", "table ... already exists").
//!
//! Which migrations a process applied is read from sea-orm-migration's own
//! log lines (`Migration 'mNNNN_...' has been applied`), which `migrate`
//! prints at its default `info` level; on PostgreSQL the test also counts
//! the rows of `seaql_migrations`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::TestDb;

use crate::support::*;

/// How many processes race.
const RACERS: usize = 3;

/// A migrate that finds nothing to do: it takes the lock, reads the
/// migration table and leaves (generous for a debug build on a busy box).
const NOTHING_TO_DO: Duration = Duration::from_secs(30);

/// The migrations a process's output says it applied, in order.
fn applied(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| l.contains("has been applied"))
        .filter_map(|l| {
            let rest = l.split_once("Migration '")?.1;
            Some(rest.split_once('\'')?.0.to_owned())
        })
        .collect()
}

/// Starts [`RACERS`] commands back to back (so their migrations overlap:
/// each takes far longer than a process start) and waits for all of them.
/// Returns each one's output after asserting it exited 0.
fn race(make: impl Fn() -> Command) -> Vec<String> {
    let mut procs: Vec<Proc> = (0..RACERS).map(|_| Proc::spawn(make())).collect();
    let mut outputs = Vec::with_capacity(RACERS);
    let mut failures = Vec::new();
    for (i, proc) in procs.iter_mut().enumerate() {
        let status = proc.wait(STARTUP);
        let output = proc.output();
        if !status.success() {
            failures.push(format!("migrate #{i} exited with {status}\n{output}"));
        }
        outputs.push(output);
    }
    assert!(
        failures.is_empty(),
        "{} of {RACERS} concurrent migrations failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    outputs
}

/// Each migration was applied by exactly one of the racers, and all of
/// them were applied.
fn assert_applied_once(outputs: &[String]) {
    let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, output) in outputs.iter().enumerate() {
        for name in applied(output) {
            by_name.entry(name).or_default().push(i);
        }
    }
    let twice: Vec<_> = by_name.iter().filter(|(_, who)| who.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "migrations applied more than once: {twice:?}\n{}",
        outputs.join("\n\n")
    );
    assert_eq!(
        by_name.len(),
        store::SCHEMA_VERSION as usize,
        "applied: {:?}\n{}",
        by_name.keys().collect::<Vec<_>>(),
        outputs.join("\n\n")
    );
}

/// One more migrate succeeds at once and applies nothing.
fn assert_up_to_date(cmd: Command) {
    let started = Instant::now();
    let mut proc = Proc::spawn(cmd);
    let status = proc.wait(NOTHING_TO_DO);
    let output = proc.output();
    assert!(status.success(), "{output}");
    assert!(applied(&output).is_empty(), "{output}");
    assert!(output.contains("No pending migrations"), "{output}");
    assert!(
        started.elapsed() < NOTHING_TO_DO,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn concurrent_migrations_on_postgres_apply_each_step_once() {
    let db = http().block_on(testkit::fresh_database(TestDb::Postgres));
    let sandbox = Sandbox::new();
    let migrate = || sandbox.cmd(&["migrate", "--database-url", &db.url]);

    let outputs = race(migrate);
    assert_applied_once(&outputs);
    assert_up_to_date(migrate());

    // The migration table holds one row per step (every row names its
    // step, `m0001_...`; nothing else in a freshly migrated database does).
    let found = http().block_on(db.find_text(&["m0"]));
    let rows = found
        .iter()
        .find_map(|f| f.strip_prefix("seaql_migrations: m0 ("))
        .and_then(|rest| rest.strip_suffix(" rows)"))
        .and_then(|n| n.parse::<u32>().ok());
    assert_eq!(rows, Some(store::SCHEMA_VERSION), "{found:?}");
}

#[test]
fn concurrent_migrations_on_sqlite_apply_each_step_once() {
    let sandbox = Sandbox::new();
    let migrate = || sandbox.cmd(&["migrate"]);

    let outputs = race(migrate);
    assert_applied_once(&outputs);
    assert_up_to_date(migrate());
    assert!(
        sandbox
            .data_dir()
            .join(format!(
                "{}.migrate.lock",
                scimgate::config::SQLITE_FILE_NAME
            ))
            .exists(),
        "no lock file beside the database"
    );
}

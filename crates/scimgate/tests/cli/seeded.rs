//! Operator commands against a fresh database of each backend, with the
//! test seeding and checking the directory through the store directly
//! (the same database the CLI opens with `--database-url`).

use std::collections::HashMap;
use std::fs::File;
use std::process::{Command, Stdio};

use scim::patch::Member;
use serde_json::{Value, json};
use store::{NewTenant, Store, StoreOptions, Tenant, TenantKind, TenantStore};
use testkit::{TestDatabase, TestDb};

use crate::support::{Finished, Sandbox, run};

/// `$USER` of every command: the audit log names it `cli:<user>`.
pub const OS_USER: &str = "cli-tester";
/// What the audit log and role-locks call the CLI.
pub const ACTOR: &str = "cli:cli-tester";

/// One backend's fresh, migrated database, a runtime to seed and inspect
/// it, and a sandbox to run the binary in.
pub struct Db {
    // Dropped first: the pool closes before the database goes.
    pub store: Store,
    pub db: TestDatabase,
    runtime: tokio::runtime::Runtime,
    sandbox: Sandbox,
}

impl Db {
    pub fn new(which: TestDb) -> Db {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let db = runtime.block_on(testkit::fresh_database(which));
        let store = runtime.block_on(async {
            let store = Store::connect(&db.url, StoreOptions::default())
                .await
                .expect("connect");
            store.migrate().await.expect("migrate");
            store
        });
        Db {
            store,
            db,
            runtime,
            sandbox: Sandbox::new(),
        }
    }

    /// Runs a future on this database's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// `scimgate ARGS --database-url <this database>` as [`OS_USER`].
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.sandbox.cmd(args);
        cmd.arg("--database-url").arg(&self.db.url);
        cmd.env("USER", OS_USER).env_remove("LOGNAME");
        cmd
    }

    /// Runs a command to completion.
    pub fn run(&self, args: &[&str]) -> Finished {
        run(self.cmd(args))
    }

    /// Runs a command with `input` on standard input.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Finished {
        let path = self.sandbox.write("stdin.txt", input);
        let mut cmd = self.cmd(args);
        cmd.stdin(Stdio::from(File::open(path).expect("open stdin file")));
        run(cmd)
    }

    /// Runs a command with `--json`, asserts success, parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        self.run(&args).json()
    }

    /// Asserts the command fails cleanly (exit 1, one-line message, no
    /// panic) and returns its message.
    pub fn fails(&self, args: &[&str]) -> String {
        let done = self.run(args);
        assert_eq!(done.status.code(), Some(1), "{}", done.describe());
        assert!(
            !done.stderr.contains("panicked"),
            "panic: {}",
            done.describe()
        );
        let message = done.stderr.trim();
        assert!(
            message.starts_with("scimgate: error: ") && !message.contains('\n'),
            "not one clean line: {}",
            done.describe()
        );
        message.to_owned()
    }

    /// A new standard tenant.
    pub fn tenant(&self, slug: &str) -> Tenant {
        self.block_on(self.store.admin().create_tenant(
            NewTenant {
                slug: slug.into(),
                name: format!("Tenant {slug}"),
                kind: TenantKind::Standard,
            },
            "test",
        ))
        .expect("create tenant")
    }

    pub fn dir(&self, tenant: &Tenant) -> TenantStore {
        self.store.tenant(tenant)
    }

    /// Creates users; returns their ids by userName.
    pub fn users(&self, tenant: &Tenant, names: &[&str]) -> HashMap<String, String> {
        let dir = self.dir(tenant);
        self.block_on(async {
            let mut ids = HashMap::new();
            for name in names {
                let user = dir
                    .create_user(json!({
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": name,
                    }))
                    .await
                    .expect("create user");
                ids.insert((*name).to_owned(), user.id);
            }
            ids
        })
    }

    /// Creates a group with these members; returns its id.
    pub fn group(&self, tenant: &Tenant, name: &str, members: &[&String]) -> String {
        let dir = self.dir(tenant);
        let members = members.iter().map(|id| Member::new(id.as_str())).collect();
        self.block_on(dir.create_group(
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": name,
            }),
            members,
        ))
        .expect("create group")
        .id
    }

    /// Each user's stored role names (sorted), by user id.
    pub fn roles_of(&self, tenant: &Tenant, ids: &[&String]) -> HashMap<String, Vec<String>> {
        let ids: Vec<String> = ids.iter().map(|id| (*id).clone()).collect();
        let effective = self
            .block_on(self.dir(tenant).effective_roles(&ids))
            .expect("effective roles");
        ids.into_iter()
            .map(|id| {
                let names = effective
                    .get(&id)
                    .map(|e| e.role_names().into_iter().map(str::to_owned).collect())
                    .unwrap_or_default();
                (id, names)
            })
            .collect()
    }

    /// The stored role policy's version.
    pub fn policy_version(&self, tenant: &Tenant) -> u64 {
        self.block_on(self.dir(tenant).role_policy())
            .expect("role policy")
            .version
    }
}

//! Deletion safety across a crash: `scimgate serve` is killed with SIGKILL
//! while IdP connections delete users past the tenant's threshold. After
//! the restart every deletion the IdP saw acknowledged is in the
//! directory's soft-deleted records and either reached the event log or
//! is held (never both, never neither), no more deletions than the
//! threshold got through, and releasing the held ones delivers them all.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::{EventType, NewToken, Scope, StoreError, TenantStore};
use testkit::backends;

use crate::seeded::Db;
use crate::support::*;

const USERS: usize = 300;
const THRESHOLD: usize = 10;

/// One IdP connection deleting `ids` until the server goes away; records
/// each acknowledged deletion.
fn deleter(scim: String, token: String, ids: Vec<String>, acked: Arc<Mutex<BTreeSet<String>>>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    testkit::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    for id in ids {
        let status = rt.block_on(async {
            let resp = client
                .delete(format!("{scim}/Users/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?;
            Some(resp.status().as_u16())
        });
        let Some(status) = status else {
            return;
        };
        assert_eq!(status, 204, "the IdP's deletion of {id}");
        acked.lock().expect("acked").insert(id);
    }
}

/// Every `user.deleted` event of the tenant, by user id.
async fn deleted_events(dir: &TenantStore) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = dir.events_after(after, 1000).await.expect("events");
        let Some(last) = page.last() else {
            return out;
        };
        after = last.position;
        out.extend(
            page.iter()
                .filter(|e| e.event_type == EventType::UserDeleted)
                .map(|e| e.resource_id.clone()),
        );
    }
}

#[test]
fn a_killed_server_keeps_every_acknowledged_deletion_delivered_or_held() {
    for which in backends() {
        let db = Db::new(which);
        let acme = db.tenant("acme");
        let set = db.json(&["safety", "set", "acme", "--max-deletions", "10"]);
        assert_eq!(set["maxDeletions"], 10, "{set}");
        let token = db
            .block_on(db.store.admin().issue_token(
                &acme,
                NewToken {
                    name: "idp".into(),
                    scopes: vec![Scope::ScimWrite, Scope::ScimRead],
                    expires_at: None,
                },
                "test",
            ))
            .expect("token")
            .secret;
        let names: Vec<String> = (0..USERS).map(|i| format!("u{i}@acme.example")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let ids: Vec<String> = db.users(&acme, &refs).into_values().collect();

        let server = Server::start(db.cmd(&["serve", "--listen", "127.0.0.1:0"]));
        let scim = format!("{}/tenants/acme/scim/v2", server.listen_url);
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let deleters: Vec<_> = ids
            .chunks(USERS / 6)
            .map(|chunk| {
                let (scim, token, acked) = (scim.clone(), token.clone(), acked.clone());
                let chunk = chunk.to_vec();
                std::thread::spawn(move || deleter(scim, token, chunk, acked))
            })
            .collect();
        assert!(
            eventually(Duration::from_secs(60), || acked
                .lock()
                .expect("acked")
                .len()
                >= 60),
            "{which:?}: too few deletions acknowledged"
        );
        server.proc.signal("KILL");
        let mut proc = server.proc;
        proc.wait(STOP);
        for d in deleters {
            d.join().expect("deleter");
        }
        let acked = std::mem::take(&mut *acked.lock().expect("acked"));
        assert!(
            acked.len() < USERS,
            "{which:?}: the kill came after the last deletion"
        );

        let dir = db.dir(&acme);
        let delivered: BTreeSet<String> = db.block_on(deleted_events(&dir)).into_iter().collect();
        let held: BTreeSet<String> = db
            .block_on(dir.held_changes(1000))
            .expect("held")
            .into_iter()
            .map(|h| h.user_id)
            .collect();
        let deleted: BTreeSet<String> = db
            .block_on(dir.deleted_users(1000))
            .expect("deleted")
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(
            delivered.len(),
            THRESHOLD,
            "{which:?}: only the threshold got through"
        );
        assert!(
            delivered.is_disjoint(&held),
            "{which:?}: delivered and held"
        );
        let settled: BTreeSet<String> = delivered.union(&held).cloned().collect();
        assert_eq!(
            settled, deleted,
            "{which:?}: every committed deletion delivered or held"
        );
        assert!(
            acked.is_subset(&deleted),
            "{which:?}: an acknowledged deletion was lost"
        );
        for id in &acked {
            assert!(matches!(
                db.block_on(dir.get_user(id)),
                Err(StoreError::NotFound(_))
            ));
        }

        // After the restart the tenant admin releases them: all delivered.
        let released = db.json(&["safety", "release", "acme"]);
        assert_eq!(released["count"], held.len(), "{which:?}: {released}");
        let now: BTreeSet<String> = db.block_on(deleted_events(&dir)).into_iter().collect();
        assert_eq!(now, deleted, "{which:?}");
    }
}

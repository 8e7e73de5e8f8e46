//! The quarantine guard's record: counts from several gateways add up per
//! tenant and minute, the window and the rule hold, the failing requests
//! come back most frequent first with their latest detail, tenants never
//! see each other's counts, and old rows are pruned.

use chrono::{Duration, TimeZone, Utc};
use store::health::{Cause, Signature, Tally, WINDOW_MINUTES};
use testkit::backends;

use crate::common::*;

fn failure(route: &str, status: u16, scim_type: Option<&str>) -> Signature {
    Signature {
        method: "GET".into(),
        route: route.into(),
        status,
        scim_type: scim_type.map(str::to_owned),
    }
}

/// `ok` successes, then `bad` refused filters with `detail`.
fn tally(ok: u64, bad: u64, detail: &str) -> Tally {
    let mut t = Tally::default();
    for _ in 0..ok {
        t.add(None);
    }
    for _ in 0..bad {
        t.add(Some((
            Cause::Validation,
            failure("/scim/v2/Users", 400, Some("invalidFilter")),
            detail,
        )));
    }
    t
}

#[tokio::test]
async fn counts_add_up_across_gateways_within_the_window() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let acme = tenant(&store, "acme").await;
        let other = tenant(&store, "other").await;
        let admin = store.admin();
        let now = Utc
            .with_ymd_and_hms(2026, 12, 7, 12, 30, 10)
            .single()
            .expect("time");

        // Two gateways in the same minute, one a minute earlier, and one
        // long before the window: only the first three count.
        admin
            .record_request_health(now, vec![(acme.id(), tally(10, 6, "first"))])
            .await
            .expect("record");
        let mut conflicts = tally(0, 0, "");
        for _ in 0..3 {
            conflicts.add(Some((
                Cause::Conflict,
                Signature {
                    method: "POST".into(),
                    route: "/scim/v2/Users".into(),
                    status: 409,
                    scim_type: Some("uniqueness".into()),
                },
                "userName taken",
            )));
        }
        conflicts.add(Some((
            Cause::Auth,
            failure("/scim/v2/Users", 401, None),
            "bad token",
        )));
        admin
            .record_request_health(
                now,
                vec![(acme.id(), conflicts), (other.id(), tally(5, 0, ""))],
            )
            .await
            .expect("record");
        admin
            .record_request_health(
                now - Duration::minutes(1),
                vec![(acme.id(), tally(0, 4, "latest"))],
            )
            .await
            .expect("record");
        admin
            .record_request_health(
                now - Duration::minutes(WINDOW_MINUTES + 5),
                vec![(acme.id(), tally(0, 100, "ancient"))],
            )
            .await
            .expect("record");

        let h = store
            .tenant(&acme)
            .request_health(now)
            .await
            .expect("health");
        assert_eq!(h.requests, 10 + 6 + 4 + 4, "{which:?}: {h:?}");
        assert_eq!(h.failures, 6 + 4 + 4, "{which:?}: {h:?}");
        assert_eq!(h.by_cause["validation"], 10, "{which:?}: {h:?}");
        assert_eq!(h.by_cause["conflict"], 3, "{which:?}: {h:?}");
        assert_eq!(h.by_cause["auth"], 1, "{which:?}: {h:?}");
        assert_eq!(h.by_cause["server"], 0, "{which:?}: {h:?}");
        assert!(
            (h.failure_ratio - 14.0 / 24.0).abs() < 1e-9,
            "{which:?}: {h:?}"
        );
        assert_eq!(h.level, "critical", "{which:?}");
        assert!(h.at_risk, "{which:?}");
        let top: Vec<(u16, u64)> = h.top_failures.iter().map(|f| (f.status, f.count)).collect();
        assert_eq!(top, vec![(400, 10), (409, 3), (401, 1)], "{which:?}: {h:?}");
        // The detail of the latest minute that saw the request.
        assert_eq!(h.top_failures[0].detail, "first", "{which:?}");
        assert_eq!(
            h.top_failures[0].scim_type.as_deref(),
            Some("invalidFilter")
        );
        assert!(h.top_failures[0].advice.contains("filter"), "{which:?}");
        assert_eq!(h.top_failures[1].cause, Cause::Conflict, "{which:?}");
        assert!(h.top_failures[2].advice.contains("token"), "{which:?}");

        // The other tenant sees only its own requests.
        let o = store
            .tenant(&other)
            .request_health(now)
            .await
            .expect("health");
        assert_eq!((o.requests, o.failures), (5, 0), "{which:?}: {o:?}");
        assert!(o.top_failures.is_empty(), "{which:?}");
        assert!(!o.at_risk, "{which:?}");

        // The fleet-wide read has both, with their slugs.
        let mut ratios = admin.request_ratios(now).await.expect("ratios");
        ratios.sort_by(|a, b| a.slug.cmp(&b.slug));
        let seen: Vec<(&str, u64, u64, bool)> = ratios
            .iter()
            .map(|r| (r.slug.as_str(), r.requests, r.failures, r.at_risk()))
            .collect();
        assert_eq!(
            seen,
            vec![("acme", 24, 14, true), ("other", 5, 0, false)],
            "{which:?}"
        );

        // A day later, the rows of every minute before `now`'s are past
        // retention: the ancient ones and the minute before (two rows
        // each, counts and failing requests).
        let removed = admin
            .prune_request_health(now + Duration::hours(24))
            .await
            .expect("prune");
        assert_eq!(removed, 4, "{which:?}");
        let left = store
            .tenant(&acme)
            .request_health(now)
            .await
            .expect("health");
        assert_eq!(left.requests, 20, "{which:?}: {left:?}");
    }
}

#[tokio::test]
async fn a_deleted_tenant_takes_its_counts_along() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let gone = tenant(&store, "gone").await;
        let now = Utc::now();
        store
            .admin()
            .record_request_health(now, vec![(gone.id(), tally(1, 1, "x"))])
            .await
            .expect("record");
        store
            .admin()
            .delete_tenant(gone.id(), "test")
            .await
            .expect("delete");
        let ratios = store.admin().request_ratios(now).await.expect("ratios");
        assert!(ratios.is_empty(), "{which:?}: {ratios:?}");
    }
}

//! The load tool against the real app, in-process on a temporary SQLite data dir.

use std::time::Duration;

use loadgen::{Options, Scenario, Target};
use scimgate::Config;

#[test]
fn initial_then_steady_against_the_real_app() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sandbox = tempfile::tempdir().expect("tempdir");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: sandbox.path().join("data"),
        rate_limit_per_second: 0,
        provisioning_log_retention_days: 1,
        ..Config::default()
    };
    runtime.block_on(async move {
        let app = scimgate::spawn(config).await.expect("app starts");
        let tenant = app.first_start().tenant.as_ref().expect("default tenant");
        let target = Target {
            scim_url: format!("{}/tenants/default/scim/v2", app.public_url()),
            token: tenant.token.secret.clone(),
        };
        let options = |scenario, duration| Options {
            targets: vec![target.clone()],
            concurrency: 8,
            scenario,
            users: 50,
            groups: 5,
            duration: Duration::from_secs(duration),
            gateways: Vec::new(),
        };

        let initial = loadgen::run(options(Scenario::Initial, 120))
            .await
            .expect("initial runs");
        assert!(initial.completed, "{}", initial.to_text());
        assert_eq!(initial.total_errors, 0, "{}", initial.to_text());
        let summary = initial.initial.as_ref().expect("initial summary");
        assert_eq!(summary.users_created, 50);
        assert_eq!(summary.groups_created, 5);
        assert_eq!(summary.members_added, 50);
        // 50 lookups + 50 POSTs + 5 lookups + 5 POSTs + 5 PATCHes of 10 members.
        assert_eq!(initial.total_requests, 115, "{}", initial.to_text());

        // A second initial cycle finds everyone and creates nothing.
        let again = loadgen::run(options(Scenario::Initial, 120))
            .await
            .expect("initial runs");
        assert_eq!(again.total_errors, 0, "{}", again.to_text());
        let summary = again.initial.as_ref().expect("initial summary");
        assert_eq!((summary.users_created, summary.users_existing), (0, 50));

        let steady = loadgen::run(options(Scenario::Steady, 2))
            .await
            .expect("steady runs");
        assert_eq!(steady.total_errors, 0, "{}", steady.to_text());
        assert!(steady.total_requests > 20, "{}", steady.to_text());
        assert!(steady.elapsed_secs >= 2.0 && steady.elapsed_secs < 30.0);
        for op in ["get_user_by_userName", "patch_user", "patch_group_members"] {
            assert!(
                steady
                    .operations
                    .iter()
                    .any(|o| o.operation == op && o.count > 0),
                "{op} missing: {}",
                steady.to_text()
            );
        }

        let lookup = loadgen::run(options(Scenario::Lookup, 1))
            .await
            .expect("lookup runs");
        assert_eq!(lookup.total_errors, 0, "{}", lookup.to_text());
        assert_eq!(lookup.operations.len(), 1);

        // Connections spread over two "gateways" (the same server twice):
        // each worker's requests go to the target's path on its origin.
        let origin = app.public_url().trim_end_matches('/').to_owned();
        let spread = loadgen::run(Options {
            gateways: vec![origin.clone(), origin],
            ..options(Scenario::Steady, 1)
        })
        .await
        .expect("steady over two gateways runs");
        assert_eq!(spread.total_errors, 0, "{}", spread.to_text());
        assert_eq!(spread.gateways, 2);
        assert!(spread.to_text().contains("over 2 gateways"));

        // The open-loop sweep: two low rates, the steady mix's requests one
        // per arrival (member PATCHes add, then the next one removes).
        let sweep = loadgen::run_sweep(loadgen::SweepOptions {
            targets: vec![target.clone()],
            users: 50,
            rates: vec![40, 80],
            step: Duration::from_secs(1),
            max_in_flight: 16,
            pause: Duration::ZERO,
        })
        .await
        .expect("sweep runs");
        assert_eq!(sweep.steps.len(), 2);
        for (step, rate) in sweep.steps.iter().zip([40, 80]) {
            assert_eq!(step.offered_per_sec, rate);
            assert_eq!(step.scheduled, u64::from(rate));
            assert_eq!((step.sent, step.not_sent), (step.scheduled, 0), "{step:?}");
            assert_eq!(step.errors, 0, "{step:?}");
            assert!(step.p50_ms > 0.0 && step.p50_ms <= step.p999_ms, "{step:?}");
        }
        let ops: Vec<&str> = sweep.steps[1]
            .operations
            .iter()
            .map(|o| o.operation.as_str())
            .collect();
        assert!(ops.contains(&"get_user_by_userName"), "{ops:?}");
        assert!(sweep.to_markdown().contains("| 80 |"));

        let refused = loadgen::run(Options {
            targets: vec![Target {
                scim_url: "http://192.0.2.1/scim/v2".into(),
                token: "x".into(),
            }],
            ..options(Scenario::Lookup, 1)
        })
        .await;
        assert!(refused.is_err());

        app.stop(true).await.expect("clean stop");
    });
}

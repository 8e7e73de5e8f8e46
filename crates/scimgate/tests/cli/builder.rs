//! The application builder `main` uses, booted in-process (STYLE §8).

use std::time::Duration;

use scimgate::Config;

#[test]
fn spawn_binds_port_0_serves_and_stops() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sandbox = tempfile::tempdir().expect("tempdir");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: sandbox.path().join("data"),
        provisioning_log_retention_days: 1,
        ..Config::default()
    };
    runtime.block_on(async move {
        let app = scimgate::spawn(config.clone()).await.expect("app starts");
        assert_ne!(app.addr().port(), 0);
        assert_eq!(app.public_url(), format!("http://{}", app.addr()));
        let first = app.first_start();
        let tenant = first.tenant.as_ref().expect("default tenant created");
        assert_eq!(tenant.tenant.slug(), "default");
        assert!(first.operator.is_some());

        let client = {
            testkit::install_tls_provider();
            reqwest::Client::builder()
        }
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
        let url = format!("{}/tenants/default/scim/v2/Users", app.public_url());
        let reply = client
            .get(&url)
            .bearer_auth(&tenant.token.secret)
            .send()
            .await
            .expect("request");
        assert_eq!(reply.status().as_u16(), 200);
        app.stop(true).await.expect("clean stop");

        // Built again on the same database: nothing new is created.
        let app = scimgate::spawn(config).await.expect("app restarts");
        assert!(app.first_start().is_empty());
        app.stop(true).await.expect("clean stop");
    });
}

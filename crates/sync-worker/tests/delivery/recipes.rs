//! The verification recipes in docs/connect-your-application.md, run as
//! written (Python and Node.js) against a request scimgate really sent: they
//! accept it, and refuse it with one byte of the body changed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use testkit::receiver::Receiver;

use crate::support::*;

/// The code block after `<!-- recipe: NAME -->` in the guide.
fn recipe(name: &str) -> String {
    let guide =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/connect-your-application.md");
    let text = std::fs::read_to_string(&guide).expect("the guide");
    let marker = format!("<!-- recipe: {name} -->");
    let after = text
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no {marker} in the guide"))
        .1;
    let start = after.find("```").expect("a code block") + 3;
    let body = &after[start..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    body[..body.find("```").expect("closing fence")].to_owned()
}

const PYTHON_DRIVER: &str = r#"
import json, sys
case = json.load(open(sys.argv[1]))
try:
    verify(case["secret"], case["headers"], bytes(case["body"]))
    print("accepted")
except ValueError as e:
    print("refused:", e)
"#;

const NODE_DRIVER: &str = r#"
const fs = require("node:fs");
const c = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
try {
  verify(c.secret, c.headers, Buffer.from(c.body));
  console.log("accepted");
} catch (e) {
  console.log("refused: " + e.message);
}
"#;

fn run(program: &str, code: &str, case: &Path) -> String {
    let dir = case.parent().expect("dir");
    let script = dir.join(if program == "node" {
        "verify.js"
    } else {
        "verify.py"
    });
    std::fs::write(&script, code).expect("script");
    let out = Command::new(program)
        .arg(&script)
        .arg(case)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} must be installed for this test (scripts/test installs it): {e}")
        });
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_recipes_verify_real_deliveries() {
    let (_db, store) = store(testkit::TestDb::Sqlite).await;
    let dir = tenant(&store, "acme").await;
    let receiver = Receiver::start().await;
    let (_, secret) = webhook_with_secret(&dir, &receiver, "app").await;
    let worker = start(&store, config());
    dir.create_user(user("bjensen")).await.expect("user");
    let got = receiver
        .wait_for(1, Duration::from_secs(20))
        .await
        .expect("a delivery");
    worker.stop().await;
    let d = &got[0];
    let headers: serde_json::Map<String, serde_json::Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|h| (h.to_string(), json!(d.header(h).expect("header"))))
            .collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let case = tmp.path().join("case.json");
    let mut tampered_body = d.raw_body.clone();
    if let Some(last) = tampered_body.iter_mut().rev().find(|b| b.is_ascii_digit()) {
        *last = if *last == b'9' { b'8' } else { *last + 1 };
    }
    for (program, code) in [
        ("python3", format!("{}{PYTHON_DRIVER}", recipe("python"))),
        ("node", format!("{}{NODE_DRIVER}", recipe("node"))),
    ] {
        for (body, expected) in [(&d.raw_body, "accepted"), (&tampered_body, "refused")] {
            let doc = json!({"secret": secret, "headers": headers, "body": body});
            std::fs::write(&case, doc.to_string()).expect("case");
            let out = run(program, &code, &case);
            assert!(out.starts_with(expected), "{program}: {out}");
        }
    }
}

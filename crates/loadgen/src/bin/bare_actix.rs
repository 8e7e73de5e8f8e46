//! `scimgate-bare-actix`: the ceiling of an actix-web server doing no work,
//! for `scripts/bench-peers` (docs/benchmarks.md). One worker thread on
//! 127.0.0.1 answers `GET /scim/v2/Users` with a fixed SCIM ListResponse of
//! one user, about the size of scimgate's answer to a `userName eq` filter
//! (about 950 bytes: the user with one group).
//! No authentication, no parsing, no storage: whatever a SCIM server does
//! per request is what separates its figure from this one.

use std::net::{Ipv4Addr, SocketAddrV4};

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;

/// Serves a fixed one-user SCIM ListResponse on 127.0.0.1 with one worker.
#[derive(Debug, Parser)]
#[command(name = "scimgate-bare-actix", version)]
struct Args {
    /// The loopback port to listen on.
    #[arg(long)]
    port: u16,
}

/// A `userName eq` answer for one Entra-shaped user, as scimgate writes it.
const LIST_RESPONSE: &str = concat!(
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"#,
    r#""totalResults":1,"itemsPerPage":1,"startIndex":1,"Resources":[{"#,
    r#""schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"#,
    r#""id":"0b7f5e0c-6a47-4c1e-9d8e-3f1a2b4c5d6e","#,
    r#""externalId":"00000000-0000-4000-8000-000000000042","#,
    r#""userName":"bench.user0000042@example.test","#,
    r#""name":{"formatted":"Bench User42","familyName":"User42","givenName":"Bench"},"#,
    r#""displayName":"Bench User42","active":true,"#,
    r#""emails":[{"value":"bench.user0000042@example.test","type":"work","primary":true}],"#,
    r#""groups":[{"value":"1c8a6f1d-7b58-4d2f-8e9f-4a2b3c5d6e7f","#,
    r#""$ref":"http://127.0.0.1/tenants/bench/scim/v2/Groups/1c8a6f1d-7b58-4d2f-8e9f-4a2b3c5d6e7f","#,
    r#""display":"bench group 00042","type":"direct"}],"#,
    r#""meta":{"resourceType":"User","created":"2026-11-24T10:00:00.000Z","#,
    r#""lastModified":"2026-11-24T10:00:00.000Z","#,
    r#""location":"http://127.0.0.1/tenants/bench/scim/v2/Users/0b7f5e0c-6a47-4c1e-9d8e-3f1a2b4c5d6e","#,
    r#""version":"W/\"1\""}}]}"#
);

async fn users() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("application/scim+json"),
        ))
        .body(LIST_RESPONSE)
}

/// mimalloc, as the server uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    HttpServer::new(|| App::new().route("/scim/v2/Users", web::get().to(users)))
        .workers(1)
        .bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, args.port))?
        .run()
        .await
}

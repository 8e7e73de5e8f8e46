//! The console's static files, embedded in the binary: htmx (committed
//! as published, see `assets/README.md`), one style sheet and one small
//! script. Served with a content hash as ETag, revalidated on every use,
//! so an upgrade never leaves a browser on an old file.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use sha2::{Digest, Sha256};

/// The file name htmx is served under (its version is part of it).
pub(crate) const HTMX: &str = "htmx-2.0.11.min.js";

/// (name, content type, bytes) of every asset.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        HTMX,
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/htmx-2.0.11.min.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/console.js"),
    ),
];

fn etags() -> &'static Vec<String> {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        FILES
            .iter()
            .map(|(_, _, bytes)| {
                let digest = Sha256::digest(bytes);
                format!(
                    "\"{}\"",
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..12])
                )
            })
            .collect()
    })
}

/// `GET /console/assets/{name}`.
pub(crate) async fn serve(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(index) = FILES.iter().position(|(n, _, _)| *n == name.as_str()) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such asset");
    };
    let (_, content_type, bytes) = FILES[index];
    let etag = &etags()[index];
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
    if let Ok(value) = HeaderValue::from_str(etag) {
        res.insert_header((header::ETAG, value));
    }
    if fresh {
        return res.finish();
    }
    res.content_type(content_type).body(bytes)
}

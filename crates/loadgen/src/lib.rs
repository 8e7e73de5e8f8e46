//! scimgate-loadgen: drives SCIM traffic shaped like Microsoft Entra's
//! provisioning against scimgate tenants on this machine and reports rates
//! and latency percentiles. Only loopback targets are accepted: the tool is
//! for this repository's own benchmarks.

mod client;
pub mod delivery;
pub mod plot;
pub mod report;
mod scenarios;
pub mod sweep;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

pub use report::{InitialSummary, OpReport, Report, Stats};
pub use sweep::{SweepOptions, SweepReport, run_sweep};

/// Longest run the tool accepts, in seconds: enough for an initial cycle of
/// a million users, still a bound.
pub const MAX_DURATION_SECS: u64 = 7200;

/// One tenant to drive: its SCIM base URL and a `scim:write` bearer token.
#[derive(Debug, Clone, Deserialize)]
pub struct Target {
    /// The tenant's SCIM base URL, e.g. `http://127.0.0.1:8080/tenants/acme/scim/v2`.
    pub scim_url: String,
    /// The bearer token.
    pub token: String,
}

/// What traffic to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Entra's initial cycle: look up, create users; look up, create groups, add members.
    Initial,
    /// A mix for the duration: 60 % `userName eq` lookups, 25 % user PATCHes, 15 % group member PATCHes.
    Steady,
    /// Only `userName eq` lookups of existing users.
    Lookup,
    /// One group of every user, built as Entra builds "All employees": the
    /// users' initial cycle, then the group's lookup, POST and member
    /// PATCHes, ten members each, one at a time.
    LargeGroup,
}

impl Scenario {
    /// The scenario's name as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Initial => "initial",
            Scenario::Steady => "steady",
            Scenario::Lookup => "lookup",
            Scenario::LargeGroup => "large-group",
        }
    }
}

/// A run's parameters.
#[derive(Debug, Clone)]
pub struct Options {
    /// Tenants to drive (at least one).
    pub targets: Vec<Target>,
    /// Concurrent workers (requests in flight).
    pub concurrency: usize,
    /// The traffic to generate.
    pub scenario: Scenario,
    /// Users per tenant: created by `initial`, looked up by `steady` and `lookup`.
    pub users: usize,
    /// Groups per tenant created by `initial`.
    pub groups: usize,
    /// Length of `steady`/`lookup`; the time limit of `initial`.
    pub duration: Duration,
    /// Origins (`http://host:port`) of several processes serving the same
    /// tenants: worker `w` sends every request to origin `w % n` (the
    /// target URLs' own origin replaced), one keep-alive connection each, as
    /// a load balancer spreads connections. Empty: the target URLs as given.
    pub gateways: Vec<String>,
}

/// Why a run could not start.
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// Reads a JSON list of `{"scim_url", "token"}` objects (extra fields, such as
/// those `scimgate tenant create --json` prints, are ignored).
pub fn read_targets(path: &Path) -> Result<Vec<Target>, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        LoadError(format!(
            "{}: expected a JSON list of {{\"scim_url\", \"token\"}}: {e}",
            path.display()
        ))
    })
}

/// Refuses anything but an `http` URL whose host is `localhost` or a loopback address.
pub fn check_loopback(url: &str) -> Result<(), LoadError> {
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| LoadError(format!("invalid URL {url:?}: {e}")))?;
    if parsed.scheme_str() != Some("http") {
        return Err(LoadError(format!(
            "{url:?}: only http URLs are supported (the server is on this machine)"
        )));
    }
    let host = parsed
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(LoadError(format!(
            "{url:?} is not a loopback address: scimgate-loadgen only drives servers on this \
             machine (localhost, 127.0.0.0/8, ::1)"
        )))
    }
}

/// `url` with its scheme and authority replaced by those of `origin`
/// (`http://host[:port]`, no path): the same tenant on another process.
pub fn with_origin(url: &str, origin: &str) -> Result<String, LoadError> {
    let base: http::Uri = origin
        .parse()
        .map_err(|e| LoadError(format!("invalid gateway {origin:?}: {e}")))?;
    let (Some(scheme), Some(authority)) = (base.scheme_str(), base.authority()) else {
        return Err(LoadError(format!(
            "gateway {origin:?}: give an origin such as http://127.0.0.1:8080"
        )));
    };
    if !matches!(base.path(), "" | "/") || base.query().is_some() {
        return Err(LoadError(format!(
            "gateway {origin:?}: give an origin without a path (the targets' paths are kept)"
        )));
    }
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| LoadError(format!("invalid URL {url:?}: {e}")))?;
    let path = parsed.path_and_query().map_or("", |p| p.as_str());
    Ok(format!("{scheme}://{authority}{path}"))
}

/// Checks the options and runs the scenario to completion or its time limit.
pub async fn run(options: Options) -> Result<Report, LoadError> {
    if options.targets.is_empty() {
        return Err(LoadError(
            "no target: give --url and --token, or --targets FILE".into(),
        ));
    }
    for target in &options.targets {
        check_loopback(&target.scim_url)?;
    }
    for gateway in &options.gateways {
        check_loopback(gateway)?;
        with_origin("http://127.0.0.1/", gateway)?;
    }
    if options.concurrency == 0 || options.concurrency > 4096 {
        return Err(LoadError("--concurrency must be between 1 and 4096".into()));
    }
    if options.users == 0 || options.users > 10_000_000 {
        return Err(LoadError("--users must be between 1 and 10000000".into()));
    }
    if options.groups > 1_000_000 {
        return Err(LoadError("--groups must be at most 1000000".into()));
    }
    if options.duration.is_zero() || options.duration > Duration::from_secs(MAX_DURATION_SECS) {
        return Err(LoadError(format!(
            "--duration must be between 1 and {MAX_DURATION_SECS} seconds"
        )));
    }
    scenarios::run(options).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080/tenants/a/scim/v2",
            "http://127.1.2.3/scim/v2",
            "http://localhost:1/scim/v2",
            "http://[::1]:8443/scim/v2",
        ] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/scim/v2",
            "http://example.com/scim/v2",
            "http://[::2]/scim/v2",
            "ftp://127.0.0.1/",
            "https://127.0.0.1/scim/v2",
            "not a url",
        ] {
            assert!(check_loopback(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gateways_replace_the_origin_only() {
        let url = "http://127.0.0.1:8080/tenants/a/scim/v2";
        let moved = with_origin(url, "http://127.0.0.1:9090").ok();
        assert_eq!(
            moved.as_deref(),
            Some("http://127.0.0.1:9090/tenants/a/scim/v2")
        );
        let moved = with_origin(url, "http://localhost:1/").ok();
        assert_eq!(
            moved.as_deref(),
            Some("http://localhost:1/tenants/a/scim/v2")
        );
        assert!(with_origin(url, "127.0.0.1:9090").is_err());
        assert!(with_origin(url, "http://127.0.0.1:9090/scim").is_err());
        assert!(with_origin(url, "not a url").is_err());
    }
}

//! Outbound SCIM: scimgate as the SCIM 2.0 client of a tenant's own
//! application, keeping the application's users and groups in line with
//! the tenant's directory one event at a time.
//!
//! - A user event (created, updated, deactivated, reactivated,
//!   roles_changed) upserts the user: `PUT /Users/{remote}` when the
//!   remote id is known (a 404 forgets it), else a lookup
//!   (`userName eq`, then `externalId eq`) that links an existing remote
//!   user instead of duplicating it, else `POST /Users` (a 409 looks up
//!   again and links). The body is the event's `data` without `id`,
//!   `meta`, `groups` and the scimgate extension; `roles` are the
//!   effective roles and `externalId` is scimgate's id when the source has
//!   none, so the link survives a lost id map.
//! - A group event upserts the group the same way (`displayName`, then
//!   `externalId`); a new group is created with `members: []` and an
//!   existing one is changed by a PATCH `replace` of `displayName` and
//!   `externalId`, so its members are never wiped.
//! - Member events PATCH `add` / `remove` of `members` with the members'
//!   remote ids; a member the application has not got yet is upserted
//!   from the directory first, one no longer in the directory is skipped.
//! - Deletions `DELETE` the remote resource (404: already gone). A soft
//!   deletion (restorable for a grace period) deactivates the remote user
//!   instead, keeping the link, so that `user.restored` reactivates it
//!   and `user.purged` deletes it.
//!
//! Each event is one attempt for the runner's state machine: the result
//! of the request that decided it becomes a [`policy::Outcome`](Outcome).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use mapping::Mapping;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde_json::{Map, Value, json};
use store::delivery::{DeliveryStore, OutboundProfile, UpdateMethod};
use store::{EventType, ResourceKind, StoreError, StoredEvent, TenantStore};
use url::Url;
use uuid::Uuid;

use crate::address::AddressPolicy;
use crate::policy::Outcome;
use crate::webhook::{Sent, error_chain, parse_retry_after, read_excerpt};

/// The most of an answer read to find an id in it (lookups ask only for
/// `id`, so real answers are far smaller).
const MAX_ANSWER: usize = 1 << 20;

/// Spaces one target's requests by its profile's `requestsPerSecond`,
/// across events, rounds and reconciliation jobs of this process.
#[derive(Debug, Default)]
pub struct Pacer(tokio::sync::Mutex<Option<tokio::time::Instant>>);

impl Pacer {
    /// The pacer of `target` in this process.
    pub fn of(target: Uuid) -> Arc<Pacer> {
        static PACERS: OnceLock<std::sync::Mutex<HashMap<Uuid, Arc<Pacer>>>> = OnceLock::new();
        let mut map = PACERS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(target).or_default().clone()
    }

    /// Waits for the next slot at `rate` requests per second.
    pub async fn wait(&self, rate: u32) {
        let mut next = self.0.lock().await;
        let now = tokio::time::Instant::now();
        let start = match *next {
            Some(at) if at > now => {
                tokio::time::sleep_until(at).await;
                at
            }
            _ => now,
        };
        *next = Some(start + Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    }
}

/// The status recorded as the outcome of an event that needed no request
/// or whose request's failure means the work is done (404 on DELETE).
const DONE: u16 = 204;

/// The most resources of one type a reconciliation lists.
const MAX_LISTED: usize = 1_000_000;

/// The longest remote id accepted from an application.
const MAX_REMOTE_ID: usize = 1024;

/// The media type of SCIM bodies (RFC 7644 §3.1).
const SCIM_JSON: &str = "application/scim+json";

/// The PATCH message schema.
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The two resource types pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `/Users`
    User,
    /// `/Groups`
    Group,
}

impl Kind {
    /// The `remote_ids` resource type and SCIM `resourceType`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
}

/// An outbound SCIM target ready to send to: its base URL, its opened
/// bearer token, and where remote ids and the directory are read.
pub struct ScimApp {
    /// The application's SCIM base URL (`.../scim/v2`).
    pub base: Url,
    /// The application's bearer token, in clear (never logged).
    pub token: String,
    /// The target, whose remote-id map this is.
    pub target: Uuid,
    /// The remote-id map.
    pub links: DeliveryStore,
    /// The tenant's directory (`None` once the tenant is deleted), for
    /// members the application has not got yet.
    pub tenant: Option<TenantStore>,
    /// The application's limits and quirks.
    pub profile: OutboundProfile,
    /// Spaces the requests when the profile limits their rate.
    pub pacer: Arc<Pacer>,
    /// The target's attribute mapping, for resources pushed from the
    /// directory rather than from an event (members, reconciliation).
    pub mapping: Option<Arc<Mapping>>,
}

impl std::fmt::Debug for ScimApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimApp")
            .field("base", &self.base.as_str())
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Why an event stopped short of delivered.
#[derive(Debug)]
pub(crate) enum Fail {
    /// The application answered with a status the runner's policy judges
    /// (retry, dead letter, disable).
    Answer {
        code: u16,
        retry_after: Option<Duration>,
        what: String,
    },
    /// No answer: the runner retries.
    NoAnswer { outcome: Outcome, why: String },
    /// A 2xx answer that cannot be used (no id, several matches): no
    /// retry will change it.
    Unusable(String),
    /// scimgate's own store failed: retried.
    Local(String),
    /// The request may not be made (address refused).
    Refused(String),
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Answer { code, what, .. } => write!(f, "{what}: HTTP {code}"),
            Fail::NoAnswer { why, .. } => f.write_str(why),
            Fail::Unusable(why) | Fail::Local(why) | Fail::Refused(why) => f.write_str(why),
        }
    }
}

impl Fail {
    /// Whether trying again later may succeed.
    pub(crate) fn transient(&self) -> bool {
        match self {
            Fail::Answer { code, .. } => matches!(code, 408 | 409 | 429) || *code >= 500,
            Fail::NoAnswer { .. } | Fail::Local(_) => true,
            Fail::Unusable(_) | Fail::Refused(_) => false,
        }
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Local(format!("store: {e}"))
    }
}

/// One answer of the application.
struct Reply {
    status: u16,
    retry_after: Option<Duration>,
    json: Option<Value>,
    body_error: Option<String>,
    what: String,
}

impl Reply {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The answer as a failure for the policy to judge.
    fn refusal(&self) -> Fail {
        Fail::Answer {
            code: self.status,
            retry_after: self.retry_after,
            what: self.what.clone(),
        }
    }

    /// The `id` of the resource a 2xx answer carries.
    fn id(&self) -> Result<String, Fail> {
        match &self.json {
            Some(v) => remote_id(v).ok_or_else(|| {
                Fail::Unusable(format!("{}: the answer has no usable id", self.what))
            }),
            // A body cut off by the network: the retry's lookup finds the
            // resource this request may have created.
            None if self.body_error.is_some() => {
                let why = self.body_error.clone().unwrap_or_default();
                Err(Fail::NoAnswer {
                    outcome: Outcome::Network(why.clone()),
                    why: format!("{}: the answer broke off: {why}", self.what),
                })
            }
            None => Err(Fail::Unusable(format!(
                "{}: the answer is not a SCIM resource",
                self.what
            ))),
        }
    }
}

/// A resource's `id` as an application sent it, if it is one scimgate can
/// put in a URL path.
fn remote_id(resource: &Value) -> Option<String> {
    let id = match resource.get("id")? {
        Value::String(s) => s.clone(),
        // Not SCIM, but some applications number their resources.
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let usable = !id.is_empty()
        && id.len() <= MAX_REMOTE_ID
        && id != "."
        && id != ".."
        && !id.chars().any(char::is_control);
    usable.then_some(id)
}

/// `value` as an RFC 7644 filter comparison value (a JSON string, so
/// quotes and backslashes are escaped).
pub fn filter_value(value: &str) -> String {
    Value::String(value.to_owned()).to_string()
}

/// The User an application receives: the envelope's `data` without `id`,
/// `meta`, `groups` and the scimgate extension; `roles` = the effective
/// roles (none when `data` carries no effective roles); `externalId` =
/// scimgate's id when the source has none.
pub fn user_body(local_id: &str, data: &Value) -> Value {
    let mut out = Map::new();
    let effective_known = data
        .as_object()
        .is_some_and(|o| o.keys().any(|k| store::render::is_roles_urn(k)));
    if let Some(obj) = data.as_object() {
        for (k, v) in obj {
            if matches!(k.as_str(), "id" | "meta" | "groups" | "roles")
                || store::render::is_roles_urn(k)
            {
                continue;
            }
            out.insert(k.clone(), v.clone());
        }
    }
    let schemas: Vec<Value> = match out.get("schemas") {
        Some(Value::Array(urns)) => urns
            .iter()
            .filter(|u| !u.as_str().is_some_and(store::render::is_roles_urn))
            .cloned()
            .collect(),
        _ => vec![json!(scim::schemas::USER)],
    };
    out.insert("schemas".into(), Value::Array(schemas));
    let roles = if effective_known {
        data.get("roles").cloned().unwrap_or_else(|| json!([]))
    } else {
        json!([])
    };
    out.insert("roles".into(), roles);
    with_external_id(&mut out, local_id);
    Value::Object(out)
}

/// The Group an application receives (without members: those come as
/// their own changes).
pub fn group_body(local_id: &str, data: &Value) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([scim::schemas::GROUP]));
    if let Some(name) = data.get("displayName") {
        out.insert("displayName".into(), name.clone());
    }
    if let Some(ext) = data.get("externalId") {
        out.insert("externalId".into(), ext.clone());
    }
    with_external_id(&mut out, local_id);
    Value::Object(out)
}

fn with_external_id(out: &mut Map<String, Value>, local_id: &str) {
    let has = out
        .get("externalId")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has {
        out.insert("externalId".into(), json!(local_id));
    }
}

/// A user or group as stored now, as delivery renders it (a user with its
/// roles, both shaped by the target's mapping); `None` when gone.
async fn stored(
    dir: &TenantStore,
    mapping: Option<&Mapping>,
    kind: ResourceKind,
    id: &str,
) -> Result<Option<Value>, StoreError> {
    let renderer = crate::envelope::Renderer {
        tenant: Some(dir),
        mapping,
    };
    let found = renderer.now(kind, &[id.to_owned()]).await?;
    Ok(found.into_iter().next().map(|(_, data)| data))
}

impl ScimApp {
    /// Delivers one event (its rendered envelope) to the application.
    pub async fn deliver(
        &self,
        client: &reqwest::Client,
        policy: &AddressPolicy,
        event: &StoredEvent,
        envelope: &Value,
        excerpt: usize,
    ) -> Sent {
        let mut session = self.session(client, policy, excerpt);
        let started = Instant::now();
        let result = session.event(event, envelope).await;
        let latency = started.elapsed();
        let (status, response) = match session.last.take() {
            Some((code, text)) => (Some(code), text),
            None => (None, None),
        };
        let (outcome, error) = match result {
            Ok(()) => {
                let code = status.filter(|c| (200..300).contains(c)).unwrap_or(DONE);
                (
                    Outcome::Status {
                        code,
                        retry_after: None,
                    },
                    None,
                )
            }
            Err(Fail::Answer {
                code,
                retry_after,
                what,
            }) => (
                Outcome::Status { code, retry_after },
                Some(format!("{what}: HTTP {code}")),
            ),
            Err(Fail::NoAnswer { outcome, why }) => (outcome, Some(why)),
            Err(Fail::Unusable(why)) | Err(Fail::Refused(why)) => {
                (Outcome::Refused(why.clone()), Some(why))
            }
            // Retried like a network failure: the operator's to fix.
            Err(Fail::Local(why)) => (Outcome::Network(why.clone()), Some(why)),
        };
        Sent {
            outcome,
            status,
            latency,
            response,
            error,
        }
    }
}

impl ScimApp {
    /// Requests outside an event (reconciliation).
    pub(crate) fn session<'a>(
        &'a self,
        client: &'a reqwest::Client,
        policy: &'a AddressPolicy,
        excerpt: usize,
    ) -> Session<'a> {
        Session {
            app: self,
            client,
            policy,
            excerpt,
            last: None,
        }
    }
}

/// The requests of one event.
pub(crate) struct Session<'a> {
    app: &'a ScimApp,
    client: &'a reqwest::Client,
    policy: &'a AddressPolicy,
    excerpt: usize,
    /// The last request's answer: its status and the start of its body.
    last: Option<(u16, Option<String>)>,
}

impl Session<'_> {
    async fn event(&mut self, event: &StoredEvent, envelope: &Value) -> Result<(), Fail> {
        let local = event.resource_id.as_str();
        let data = envelope.get("data").unwrap_or(&Value::Null);
        match event.event_type {
            EventType::UserCreated
            | EventType::UserUpdated
            | EventType::UserDeactivated
            | EventType::UserReactivated
            | EventType::UserRestored
            | EventType::UserRolesChanged => {
                // Without a userName the user is gone (a role event
                // rendered after the deletion): its deletion follows.
                if data.get("userName").is_some() {
                    self.upsert_user(local, &user_body(local, data)).await?;
                }
                Ok(())
            }
            // A soft delete can be undone: the application's user is
            // deactivated and stays linked, so a restore reactivates it
            // rather than create another. The purge deletes it.
            EventType::UserDeleted if event.payload.get("restorable_until").is_some() => {
                let mut data = data.clone();
                if data.get("userName").is_some() {
                    data["active"] = json!(false);
                    if self.link(Kind::User, local).await?.is_some() {
                        self.upsert_user(local, &user_body(local, &data)).await?;
                    }
                }
                Ok(())
            }
            EventType::UserDeleted | EventType::UserPurged => self.delete(Kind::User, local).await,
            EventType::GroupCreated | EventType::GroupUpdated => {
                if data.get("displayName").is_some() {
                    self.upsert_group(local, &group_body(local, data)).await?;
                }
                Ok(())
            }
            EventType::GroupDeleted => self.delete(Kind::Group, local).await,
            EventType::GroupMembersAdded | EventType::GroupMembersRemoved => {
                let ids: Vec<String> = envelope
                    .get("members")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                let add = event.event_type == EventType::GroupMembersAdded;
                self.members(local, data, &ids, add).await
            }
        }
    }

    // -- the remote-id map

    async fn link(&self, kind: Kind, local: &str) -> Result<Option<String>, Fail> {
        Ok(self
            .app
            .links
            .remote_id(self.app.target, kind.name(), local)
            .await?)
    }

    async fn set_link(&self, kind: Kind, local: &str, remote: Option<&str>) -> Result<(), Fail> {
        Ok(self
            .app
            .links
            .set_remote_id(self.app.target, kind.name(), local, remote)
            .await?)
    }

    // -- requests

    /// `base/segments...`
    fn url(&self, segments: &[&str]) -> Result<Url, Fail> {
        let mut url = self.app.base.clone();
        url.path_segments_mut()
            .map_err(|()| Fail::Refused("the target's URL cannot have a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn call(
        &mut self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Reply, Fail> {
        crate::http::check_request_url(self.policy, &url)
            .map_err(|e| Fail::Refused(e.to_string()))?;
        if let Some(rate) = self.app.profile.requests_per_second {
            self.app.pacer.wait(rate).await;
        }
        let what = format!("{method} {}", self.shown(&url));
        // The recorded status is the last request's: none if it gets no
        // answer.
        self.last = None;
        let mut auth = HeaderValue::try_from(format!("Bearer {}", self.app.token))
            .map_err(|_| Fail::Refused("the target's token is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let mut request = self
            .client
            .request(method, url)
            .header(AUTHORIZATION, auth)
            .header(
                ACCEPT,
                HeaderValue::from_static("application/scim+json, application/json"),
            );
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON))
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(Fail::NoAnswer {
                    outcome: Outcome::Timeout,
                    why: format!("{what}: timed out"),
                });
            }
            Err(e) => {
                let why = error_chain(&e);
                return Err(Fail::NoAnswer {
                    outcome: Outcome::Network(why.clone()),
                    why: format!("{what}: {why}"),
                });
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let (text, body_error) = read_excerpt(response, MAX_ANSWER).await;
        let json = match (&text, &body_error) {
            (Some(t), None) => serde_json::from_str::<Value>(t).ok(),
            _ => None,
        };
        self.last = Some((status, text.map(|t| bounded(t, self.excerpt))));
        Ok(Reply {
            status,
            retry_after,
            json,
            body_error,
            what,
        })
    }

    /// A request URL as recorded: its path and query below the base.
    fn shown(&self, url: &Url) -> String {
        let base = self.app.base.path().trim_end_matches('/');
        let path = url.path().strip_prefix(base).unwrap_or(url.path());
        match url.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        }
    }

    /// The remote id of the resource of `kind` whose `attr` equals
    /// `value`, if the application has one.
    async fn find(&mut self, kind: Kind, attr: &str, value: &str) -> Result<Option<String>, Fail> {
        let mut url = self.url(&[kind.endpoint()])?;
        url.query_pairs_mut()
            .append_pair("filter", &format!("{attr} eq {}", filter_value(value)))
            .append_pair("attributes", "id");
        let reply = self.call(Method::GET, url, None).await?;
        if !reply.ok() {
            return Err(reply.refusal());
        }
        let found: Vec<&Value> = reply
            .json
            .as_ref()
            .and_then(|j| j.get("Resources"))
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        match found.as_slice() {
            [] => Ok(None),
            [one] => remote_id(one).map(Some).ok_or_else(|| {
                Fail::Unusable(format!("{}: the match has no usable id", reply.what))
            }),
            many => Err(Fail::Unusable(format!(
                "{}: {} {}s match; scimgate links only one",
                reply.what,
                many.len(),
                kind.name()
            ))),
        }
    }

    /// Looks a resource up by its natural key, then by `externalId`.
    async fn lookup(&mut self, kind: Kind, body: &Value) -> Result<Option<String>, Fail> {
        let key = match kind {
            Kind::User => "userName",
            Kind::Group => "displayName",
        };
        if let Some(v) = body.get(key).and_then(Value::as_str)
            && let Some(found) = self.find(kind, key, v).await?
        {
            return Ok(Some(found));
        }
        if let Some(v) = body.get("externalId").and_then(Value::as_str)
            && let Some(found) = self.find(kind, "externalId", v).await?
        {
            return Ok(Some(found));
        }
        Ok(None)
    }

    // -- for reconciliation

    /// Every resource of `kind` the application lists, page by page.
    pub(crate) async fn list_all(&mut self, kind: Kind) -> Result<Vec<Value>, Fail> {
        const PAGE: usize = 100;
        let mut out = Vec::new();
        loop {
            let mut url = self.url(&[kind.endpoint()])?;
            url.query_pairs_mut()
                .append_pair("startIndex", &(out.len() + 1).to_string())
                .append_pair("count", &PAGE.to_string());
            let reply = self.call(Method::GET, url, None).await?;
            if !reply.ok() {
                return Err(reply.refusal());
            }
            let page: Vec<Value> = reply
                .json
                .as_ref()
                .and_then(|j| j.get("Resources"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = reply
                .json
                .as_ref()
                .and_then(|j| j.get("totalResults"))
                .and_then(Value::as_u64);
            let n = page.len();
            out.extend(page);
            // An application that ignores paging must not keep this loop
            // going: a short page without a total ends it, and so does
            // the bound.
            let done = n == 0 || total.map_or(n < PAGE, |t| out.len() as u64 >= t);
            if done {
                return Ok(out);
            }
            if out.len() >= MAX_LISTED {
                return Err(Fail::Unusable(format!(
                    "the application lists more than {MAX_LISTED} {}s",
                    kind.name()
                )));
            }
        }
    }

    /// Upserts a user as the directory holds it now; `None` when gone.
    pub(crate) async fn push_user(&mut self, local: &str) -> Result<Option<String>, Fail> {
        let Some(dir) = self.app.tenant.clone() else {
            return Ok(None);
        };
        match stored(&dir, self.app.mapping.as_deref(), ResourceKind::User, local).await? {
            Some(data) => Ok(Some(
                self.upsert_user(local, &user_body(local, &data)).await?,
            )),
            None => Ok(None),
        }
    }

    /// Upserts a group's attributes as the directory holds them now.
    pub(crate) async fn push_group(&mut self, local: &str) -> Result<Option<String>, Fail> {
        let Some(dir) = self.app.tenant.clone() else {
            return Ok(None);
        };
        match stored(
            &dir,
            self.app.mapping.as_deref(),
            ResourceKind::Group,
            local,
        )
        .await?
        {
            Some(data) => Ok(Some(
                self.upsert_group(local, &group_body(local, &data)).await?,
            )),
            None => Ok(None),
        }
    }

    /// Deletes a resource scimgate pushed and forgets it.
    pub(crate) async fn remove(&mut self, kind: Kind, local: &str) -> Result<(), Fail> {
        self.delete(kind, local).await
    }

    /// Adds and removes members (remote ids) of a remote group.
    pub(crate) async fn patch_members(
        &mut self,
        remote_group: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), Fail> {
        // At most the profile's members per request, as delivery sends.
        let per = self.members_per_patch();
        let mut requests: Vec<Vec<Value>> = add
            .chunks(per)
            .map(|chunk| {
                let values: Vec<Value> = chunk.iter().map(|r| json!({"value": r})).collect();
                vec![json!({"op": "add", "path": "members", "value": values})]
            })
            .collect();
        requests.extend(remove.chunks(per).map(|chunk| {
            chunk
                .iter()
                .map(|r| {
                    json!({"op": "remove",
                           "path": format!("members[value eq {}]", filter_value(r))})
                })
                .collect()
        }));
        for ops in requests {
            let patch = json!({"schemas": [PATCH_OP], "Operations": ops});
            let url = self.url(&[Kind::Group.endpoint(), remote_group])?;
            let reply = self.call(Method::PATCH, url, Some(&patch)).await?;
            if !reply.ok() {
                return Err(reply.refusal());
            }
        }
        Ok(())
    }

    // -- resources

    /// Creates or replaces the user at the application; its remote id.
    async fn upsert_user(&mut self, local: &str, body: &Value) -> Result<String, Fail> {
        self.upsert(Kind::User, local, body).await
    }

    /// Creates the group or changes its attributes (never its members).
    async fn upsert_group(&mut self, local: &str, body: &Value) -> Result<String, Fail> {
        self.upsert(Kind::Group, local, body).await
    }

    /// Members per group PATCH, by the profile.
    fn members_per_patch(&self) -> usize {
        usize::try_from(self.app.profile.members_per_patch)
            .unwrap_or(1)
            .max(1)
    }

    /// The update of an existing resource: for users a PUT, or (by the
    /// profile) a PATCH `replace` of their attributes; for groups a PATCH
    /// `replace` of the attributes (a PUT would replace their members).
    async fn update(&mut self, kind: Kind, remote: &str, body: &Value) -> Result<Reply, Fail> {
        let url = self.url(&[kind.endpoint(), remote])?;
        match kind {
            Kind::User if self.app.profile.update_method == UpdateMethod::Patch => {
                let mut value = body.clone();
                if let Some(o) = value.as_object_mut() {
                    o.remove("schemas");
                }
                let patch = json!({"schemas": [PATCH_OP],
                                   "Operations": [{"op": "replace", "value": value}]});
                self.call(Method::PATCH, url, Some(&patch)).await
            }
            Kind::User => self.call(Method::PUT, url, Some(body)).await,
            Kind::Group => {
                let ops: Vec<Value> = ["displayName", "externalId"]
                    .iter()
                    .filter_map(|a| {
                        body.get(*a)
                            .map(|v| json!({"op": "replace", "path": a, "value": v}))
                    })
                    .collect();
                let patch = json!({"schemas": [PATCH_OP], "Operations": ops});
                self.call(Method::PATCH, url, Some(&patch)).await
            }
        }
    }

    async fn upsert(&mut self, kind: Kind, local: &str, body: &Value) -> Result<String, Fail> {
        if let Some(remote) = self.link(kind, local).await? {
            let reply = self.update(kind, &remote, body).await?;
            if reply.ok() {
                return Ok(remote);
            }
            if reply.status != 404 {
                return Err(reply.refusal());
            }
            // Deleted at the application: forget it and start over.
            self.set_link(kind, local, None).await?;
        }
        if let Some(remote) = self.lookup(kind, body).await? {
            return self.adopt(kind, local, remote, body).await;
        }
        let mut create = body.clone();
        if kind == Kind::Group
            && let Some(obj) = create.as_object_mut()
        {
            obj.insert("members".into(), json!([]));
        }
        let url = self.url(&[kind.endpoint()])?;
        let reply = self.call(Method::POST, url, Some(&create)).await?;
        if reply.ok() {
            let remote = reply.id()?;
            self.set_link(kind, local, Some(&remote)).await?;
            return Ok(remote);
        }
        if reply.status == 409
            && let Some(remote) = self.lookup(kind, body).await?
        {
            return self.adopt(kind, local, remote, body).await;
        }
        // A conflict no lookup explains (another unique attribute, or a
        // creation not yet visible) goes to the policy, which retries.
        Err(reply.refusal())
    }

    /// Links an existing remote resource and brings it in line.
    async fn adopt(
        &mut self,
        kind: Kind,
        local: &str,
        remote: String,
        body: &Value,
    ) -> Result<String, Fail> {
        self.set_link(kind, local, Some(&remote)).await?;
        let reply = self.update(kind, &remote, body).await?;
        if reply.ok() {
            Ok(remote)
        } else {
            Err(reply.refusal())
        }
    }

    async fn delete(&mut self, kind: Kind, local: &str) -> Result<(), Fail> {
        // Never pushed (or already deleted): nothing of ours to delete.
        let Some(remote) = self.link(kind, local).await? else {
            return Ok(());
        };
        let url = self.url(&[kind.endpoint(), &remote])?;
        let reply = self.call(Method::DELETE, url, None).await?;
        if reply.ok() || reply.status == 404 {
            self.set_link(kind, local, None).await?;
            return Ok(());
        }
        Err(reply.refusal())
    }

    /// The remote id of a member, upserting it from the directory when
    /// the application has not got it; `None` when it is no longer in
    /// the directory.
    async fn member(&mut self, id: &str) -> Result<Option<String>, Fail> {
        if let Some(remote) = self.link(Kind::User, id).await? {
            return Ok(Some(remote));
        }
        if let Some(remote) = self.link(Kind::Group, id).await? {
            return Ok(Some(remote));
        }
        let Some(dir) = self.app.tenant.clone() else {
            return Ok(None);
        };
        if let Some(data) =
            stored(&dir, self.app.mapping.as_deref(), ResourceKind::User, id).await?
        {
            return Ok(Some(self.upsert_user(id, &user_body(id, &data)).await?));
        }
        if let Some(data) =
            stored(&dir, self.app.mapping.as_deref(), ResourceKind::Group, id).await?
        {
            return Ok(Some(self.upsert_group(id, &group_body(id, &data)).await?));
        }
        Ok(None)
    }

    async fn members(
        &mut self,
        local: &str,
        data: &Value,
        ids: &[String],
        add: bool,
    ) -> Result<(), Fail> {
        if self.app.profile.flatten_groups {
            return self.flat_members(local, data, ids, add).await;
        }
        let mut remote = match self.link(Kind::Group, local).await? {
            Some(r) => r,
            // Not pushed yet (the target is newer than the group).
            None if data.get("displayName").is_some() => {
                self.upsert_group(local, &group_body(local, data)).await?
            }
            // The group is gone; its deletion follows.
            None => return Ok(()),
        };
        let mut members = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.member(id).await? {
                members.push(r);
            }
        }
        for chunk in members.chunks(self.members_per_patch()) {
            let ops: Vec<Value> = if add {
                let values: Vec<Value> = chunk.iter().map(|r| json!({"value": r})).collect();
                vec![json!({"op": "add", "path": "members", "value": values})]
            } else {
                chunk
                    .iter()
                    .map(|r| {
                        json!({"op": "remove",
                               "path": format!("members[value eq {}]", filter_value(r))})
                    })
                    .collect()
            };
            let patch = json!({"schemas": [PATCH_OP], "Operations": ops});
            let url = self.url(&[Kind::Group.endpoint(), &remote])?;
            let reply = self.call(Method::PATCH, url, Some(&patch)).await?;
            if reply.ok() {
                continue;
            }
            if reply.status != 404 || data.get("displayName").is_none() {
                return Err(reply.refusal());
            }
            // The group was deleted at the application: create it again.
            // Removing from a new, empty group is moot; adding goes on.
            self.set_link(Kind::Group, local, None).await?;
            remote = self.upsert_group(local, &group_body(local, data)).await?;
            if !add {
                return Ok(());
            }
            let url = self.url(&[Kind::Group.endpoint(), &remote])?;
            let reply = self.call(Method::PATCH, url, Some(&patch)).await?;
            if !reply.ok() {
                return Err(reply.refusal());
            }
        }
        Ok(())
    }
}

impl Session<'_> {
    /// A member change of group `local` for an application that takes
    /// only users as members (the profile's `flattenGroups`): `local` and
    /// every group it is nested in, transitively, gain the users the
    /// change brought under them, or lose those it took away that are no
    /// longer under them by another path. Decided from the directory as
    /// it is now, so a later change's own event settles what this one
    /// cannot see.
    async fn flat_members(
        &mut self,
        local: &str,
        data: &Value,
        ids: &[String],
        add: bool,
    ) -> Result<(), Fail> {
        let Some(dir) = self.app.tenant.clone() else {
            return Ok(());
        };
        // The users the change is about: those named, and those under
        // the groups named.
        let mut touched = BTreeSet::new();
        for id in ids {
            match users_under(&dir, id).await? {
                Some(users) => touched.extend(users),
                None => {
                    touched.insert(id.clone());
                }
            }
        }
        let mut groups = vec![local.to_owned()];
        groups.extend(groups_above(&dir, local).await?);
        for group in groups {
            let Some(under) = users_under(&dir, &group).await? else {
                continue;
            };
            let remote = match self.link(Kind::Group, &group).await? {
                Some(r) => r,
                None if group == local && data.get("displayName").is_some() => {
                    self.upsert_group(local, &group_body(local, data)).await?
                }
                None => match self.push_group(&group).await? {
                    Some(r) => r,
                    None => continue,
                },
            };
            let (mut added, mut removed) = (Vec::new(), Vec::new());
            for user in &touched {
                match (add, under.contains(user)) {
                    (true, true) => {
                        if let Some(r) = self.member(user).await? {
                            added.push(r);
                        }
                    }
                    (false, false) => {
                        if let Some(r) = self.link(Kind::User, user).await? {
                            removed.push(r);
                        }
                    }
                    _ => {}
                }
            }
            self.patch_members(&remote, &added, &removed).await?;
        }
        Ok(())
    }
}

/// The users under group `id`: its user members and, transitively, those
/// of the groups among its members; `None` when `id` is not a group.
async fn users_under(dir: &TenantStore, id: &str) -> Result<Option<BTreeSet<String>>, StoreError> {
    let mut users = BTreeSet::new();
    let mut seen = HashSet::from([id.to_owned()]);
    let mut queue = vec![id.to_owned()];
    while let Some(group) = queue.pop() {
        let members = match dir.group_members(&group).await {
            Ok(m) => m,
            Err(StoreError::NotFound(_)) if group == id => return Ok(None),
            // A nested group deleted meanwhile has no users to give.
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        for m in members {
            if m.r#type.as_deref() == Some("Group") {
                if seen.insert(m.value.clone()) {
                    queue.push(m.value);
                }
            } else {
                users.insert(m.value);
            }
        }
    }
    Ok(Some(users))
}

/// The groups group `id` is nested in, transitively (a cycle ends where
/// it started).
async fn groups_above(dir: &TenantStore, id: &str) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let mut seen = HashSet::from([id.to_owned()]);
    let mut queue = vec![id.to_owned()];
    while let Some(group) = queue.pop() {
        let parents = dir.user_groups(std::slice::from_ref(&group)).await?;
        for parent in parents.into_values().flatten() {
            if seen.insert(parent.id.clone()) {
                out.push(parent.id.clone());
                queue.push(parent.id);
            }
        }
    }
    Ok(out)
}

/// The first `limit` bytes of `text`, cut at a character boundary.
fn bounded(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a paused clock (which advances only by the waits themselves):
    /// five requests at 10 per second take 0.4 s, and one after a long
    /// pause goes at once.
    #[tokio::test(start_paused = true)]
    async fn a_pacer_spaces_requests_by_the_rate() {
        let pacer = Pacer::default();
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            pacer.wait(10).await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(400));
        tokio::time::sleep(Duration::from_secs(5)).await;
        let later = tokio::time::Instant::now();
        pacer.wait(10).await;
        assert_eq!(later.elapsed(), Duration::ZERO);
        assert!(Arc::ptr_eq(
            &Pacer::of(Uuid::nil()),
            &Pacer::of(Uuid::nil())
        ));
    }

    #[test]
    fn filter_values_are_escaped_json_strings() {
        assert_eq!(filter_value("bjensen"), r#""bjensen""#);
        assert_eq!(filter_value(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(filter_value("x\ny"), r#""x\ny""#);
    }

    #[test]
    fn a_user_body_carries_effective_roles_and_an_external_id() {
        let data = json!({
            "id": "local-1",
            "schemas": [scim::schemas::USER, scim::schemas::SCIMGATE_USER],
            "userName": "bjensen",
            "active": true,
            "groups": [{"value": "g"}],
            "meta": {"resourceType": "User"},
            "roles": [{"value": "admin"}],
            scim::schemas::SCIMGATE_USER: {"effectiveRoles": [{"value": "admin"}]},
        });
        let body = user_body("local-1", &data);
        assert_eq!(
            body,
            json!({
                "schemas": [scim::schemas::USER],
                "userName": "bjensen",
                "active": true,
                "roles": [{"value": "admin"}],
                "externalId": "local-1",
            })
        );
        // Roles the IdP wrote into the document are not effective roles.
        let idp = json!({"userName": "x", "externalId": "e-1", "roles": [{"value": "root"}]});
        let body = user_body("local-2", &idp);
        assert_eq!(body["roles"], json!([]));
        assert_eq!(body["externalId"], json!("e-1"));
    }

    #[test]
    fn remote_ids_must_fit_in_a_path() {
        assert_eq!(remote_id(&json!({"id": "abc"})), Some("abc".into()));
        assert_eq!(remote_id(&json!({"id": 42})), Some("42".into()));
        assert_eq!(remote_id(&json!({"id": ""})), None);
        assert_eq!(remote_id(&json!({"id": ".."})), None);
        assert_eq!(remote_id(&json!({"id": "a\nb"})), None);
        assert_eq!(remote_id(&json!({})), None);
    }

    #[test]
    fn excerpts_are_cut_at_a_character_boundary() {
        assert_eq!(bounded("héllo".into(), 2), "h");
        assert_eq!(bounded("hello".into(), 10), "hello");
    }
}

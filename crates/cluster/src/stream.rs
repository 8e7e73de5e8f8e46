//! The delivery queue's Redis side (docs/delivery-scale-out.md): the
//! partitioned event streams, the relay that fills them, and the leases
//! that share the partitions among the workers.
//!
//! An entry says only "tenant T has an event at log position X": the
//! events themselves, and every target's cursor, stay in the database.
//! So an entry added twice, read twice or lost costs a wake-up, never an
//! event, and this module can keep every operation simple and bounded.
//!
//! Keys (all under the deployment's prefix, `scimgate:`):
//! - `events:{p}`: partition `p`'s stream (fields `position`, `id`,
//!   `tenant`), with the consumer group [`GROUP`];
//! - `relay`: the relay's lock (the holder's name, with a TTL);
//! - `relay:position`: the last log position relayed;
//! - `workers`: a sorted set of live workers, scored by heartbeat expiry
//!   (milliseconds, Redis's clock);
//! - `partition:{p}`: the lease of partition `p` (its worker, with a TTL).
//!
//! Every multi-step change is one Lua script, atomic like MULTI/EXEC but
//! able to check before it writes (a relay that lost its lock, or whose
//! idea of the position is stale, writes nothing). WATCH is no option on
//! the shared multiplexed connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{AsyncConnectionConfig, Script, Value};
use uuid::Uuid;

use crate::{CALL_TIMEOUT, ClusterError, Redis, bounded};

/// How many streams the events are spread over: the most workers that
/// can share the delivery.
pub const PARTITIONS: u16 = 16;

/// The consumer group every worker reads the streams in.
pub const GROUP: &str = "delivery";

/// The approximate length each stream is trimmed to (`MAXLEN ~`): a
/// reader that far behind loses wake-ups, never events.
pub const MAX_LEN: u64 = 100_000;

/// The partition of a tenant's events: the first 8 bytes of its id, as a
/// big-endian number, modulo [`PARTITIONS`]. Stable across processes and
/// versions (unlike Rust's randomly seeded hasher): every worker must
/// agree on it.
pub fn partition_of(tenant: Uuid) -> u16 {
    let bytes = tenant.as_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    let n = u64::from_be_bytes(first) % u64::from(PARTITIONS);
    // Below PARTITIONS, so it fits.
    u16::try_from(n).unwrap_or(0)
}

/// How many of `partitions` one of `live` workers takes: the ceiling of
/// the quotient, so every partition has a worker (the last may hold
/// fewer). With no live worker known (it has not heartbeated yet), all.
pub fn share(partitions: u16, live: u64) -> u16 {
    let n = u64::from(partitions).div_ceil(live.max(1));
    u16::try_from(n).unwrap_or(partitions)
}

/// `KEYS[1]`: the workers set. `ARGV[1]`: this worker. `ARGV[2]`: the
/// heartbeat's life (ms). Drops the workers whose heartbeat expired,
/// records this one's, returns how many are live.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZCARD', KEYS[1])
";

/// `KEYS`: every partition's lease, in partition order. `ARGV[1]`: this
/// worker. `ARGV[2]`: the lease (ms). `ARGV[3]`: its share. Gives up the
/// highest partitions above the share, renews the rest, takes free ones
/// up to the share; returns the partitions it holds (0-based).
const BALANCE: &str = r"
local owner = ARGV[1]
local ttl = tonumber(ARGV[2])
local share = tonumber(ARGV[3])
local mine = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == owner then
    mine[#mine + 1] = i
  end
end
while #mine > share do
  redis.call('DEL', KEYS[mine[#mine]])
  mine[#mine] = nil
end
for _, i in ipairs(mine) do
  redis.call('PEXPIRE', KEYS[i], ttl)
end
for i = 1, #KEYS do
  if #mine >= share then break end
  if redis.call('SET', KEYS[i], owner, 'NX', 'PX', ttl) then
    mine[#mine + 1] = i
  end
end
table.sort(mine)
local out = {}
for k, i in ipairs(mine) do out[k] = i - 1 end
return out
";

/// `KEYS[1]`: the workers set; `KEYS[2..]`: leases (partitions, the
/// relay's lock). `ARGV[1]`: this worker. Removes its heartbeat and gives
/// up whichever of the leases it holds.
const LEAVE: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
  end
end
return 1
";

/// `KEYS[1]`: the relay's lock. `ARGV[1]`: this worker. `ARGV[2]`: the
/// lock's life (ms). 1: renewed; 2: newly taken; 0: another holds it.
const RELAY_LOCK: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
";

/// `KEYS[1]`: the relay's lock; `KEYS[2]`: the relay position;
/// `KEYS[3..]`: the streams written. `ARGV[1]`: this worker; `ARGV[2]`:
/// the position it expects ('' for none); `ARGV[3]`: the new position;
/// `ARGV[4]`: MAXLEN; `ARGV[5]`: the group; then four per entry: stream
/// (index into KEYS), position, event id, tenant.
///
/// Writes nothing unless this worker holds the lock (-1) and the position
/// is the expected one (-2). A stream is created with its group at id 0,
/// so a worker never creates the group after entries it would then skip.
const APPEND: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local at = redis.call('GET', KEYS[2])
if (at or '') ~= ARGV[2] then return -2 end
for k = 3, #KEYS do
  redis.pcall('XGROUP', 'CREATE', KEYS[k], ARGV[5], '0', 'MKSTREAM')
end
for i = 6, #ARGV, 4 do
  redis.call('XADD', KEYS[tonumber(ARGV[i])], 'MAXLEN', '~', ARGV[4], '*',
    'position', ARGV[i + 1], 'id', ARGV[i + 2], 'tenant', ARGV[i + 3])
end
redis.call('SET', KEYS[2], ARGV[3])
return 1
";

/// One event to relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// Its position in the event log.
    pub position: i64,
    /// Its id in the event log.
    pub event_id: i64,
    /// Its tenant (which names the partition).
    pub tenant: Uuid,
}

/// One entry read from a partition's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The partition it was read from.
    pub partition: u16,
    /// Its stream id (what is acknowledged).
    pub id: String,
    /// The event's position in the log.
    pub position: i64,
    /// The event's id in the log.
    pub event_id: i64,
    /// The event's tenant.
    pub tenant: Uuid,
}

/// What became of an [`EventStreams::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The entries and the new position are written.
    Done,
    /// Nothing written: this worker does not hold the relay's lock.
    NotHolder,
    /// Nothing written: the relay position is not the one expected (Redis
    /// restarted, or another relay moved it); read it again.
    Moved,
}

/// What [`EventStreams::relay_lock`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// This worker held it and renewed it.
    Renewed,
    /// It was free and this worker took it.
    Taken,
    /// Another worker holds it.
    Busy,
}

struct Scripts {
    heartbeat: Script,
    balance: Script,
    leave: Script,
    relay_lock: Script,
    append: Script,
}

/// The delivery streams and their leases on one Redis; cheap to clone.
#[derive(Clone)]
pub struct EventStreams {
    redis: Redis,
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for EventStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStreams")
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn is_code(e: &redis::RedisError, code: &str) -> bool {
    e.code() == Some(code)
}

impl EventStreams {
    /// The streams on `redis`.
    pub fn new(redis: Redis) -> EventStreams {
        EventStreams {
            redis,
            scripts: Arc::new(Scripts {
                heartbeat: Script::new(HEARTBEAT),
                balance: Script::new(BALANCE),
                leave: Script::new(LEAVE),
                relay_lock: Script::new(RELAY_LOCK),
                append: Script::new(APPEND),
            }),
        }
    }

    fn stream_key(&self, partition: u16) -> String {
        self.redis.key(&["events", &partition.to_string()])
    }

    fn partition_key(&self, partition: u16) -> String {
        self.redis.key(&["partition", &partition.to_string()])
    }

    fn workers_key(&self) -> String {
        self.redis.key(&["workers"])
    }

    fn relay_key(&self) -> String {
        self.redis.key(&["relay"])
    }

    fn position_key(&self) -> String {
        self.redis.key(&["relay", "position"])
    }

    /// Records that `owner` is alive for `ttl` more, drops the workers
    /// whose heartbeat expired, and returns how many are live (this one
    /// included).
    pub async fn heartbeat(&self, owner: &str, ttl: Duration) -> Result<u64, ClusterError> {
        let mut conn = self.redis.conn();
        let mut call = self.scripts.heartbeat.key(self.workers_key());
        call.arg(owner).arg(millis(ttl));
        bounded(call.invoke_async(&mut conn)).await
    }

    /// Holds `share` partitions for `owner` until `ttl` from now: renews
    /// the ones it holds, gives up those above the share (highest first),
    /// takes free ones up to it. Returns the partitions it holds, in order.
    pub async fn balance(
        &self,
        owner: &str,
        ttl: Duration,
        share: u16,
    ) -> Result<Vec<u16>, ClusterError> {
        let mut conn = self.redis.conn();
        let mut call = self.scripts.balance.prepare_invoke();
        for p in 0..PARTITIONS {
            call.key(self.partition_key(p));
        }
        call.arg(owner).arg(millis(ttl)).arg(share);
        let held: Vec<i64> = bounded(call.invoke_async(&mut conn)).await?;
        Ok(held
            .into_iter()
            .filter_map(|p| u16::try_from(p).ok())
            .filter(|p| *p < PARTITIONS)
            .collect())
    }

    /// Removes `owner`'s heartbeat and gives up every lease it holds
    /// (partitions, the relay's lock): a graceful stop, so the others
    /// take over at once instead of after the leases run out.
    pub async fn leave(&self, owner: &str) -> Result<(), ClusterError> {
        let mut conn = self.redis.conn();
        let mut call = self.scripts.leave.key(self.workers_key());
        for p in 0..PARTITIONS {
            call.key(self.partition_key(p));
        }
        call.key(self.relay_key()).arg(owner);
        let _: i64 = bounded(call.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Makes sure partition `partition`'s stream and its group exist. A
    /// new group starts at id 0: if the stream already had entries (the
    /// group was lost), they are read again, which costs wake-ups only.
    pub async fn ensure_group(&self, partition: u16) -> Result<(), ClusterError> {
        let mut conn = self.redis.conn();
        let created: Result<(), ClusterError> = bounded(
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.stream_key(partition))
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn),
        )
        .await;
        match created {
            Err(ClusterError::Redis(e)) if is_code(&e, "BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Takes the relay's lock for `owner` if it is free, or renews it if
    /// `owner` holds it, for `ttl`.
    pub async fn relay_lock(&self, owner: &str, ttl: Duration) -> Result<Lock, ClusterError> {
        let mut conn = self.redis.conn();
        let mut call = self.scripts.relay_lock.key(self.relay_key());
        call.arg(owner).arg(millis(ttl));
        let state: i64 = bounded(call.invoke_async(&mut conn)).await?;
        Ok(match state {
            1 => Lock::Renewed,
            2 => Lock::Taken,
            _ => Lock::Busy,
        })
    }

    /// The last log position relayed (`None` on a first start, or after
    /// Redis lost its data).
    pub async fn relay_position(&self) -> Result<Option<i64>, ClusterError> {
        let mut conn = self.redis.conn();
        bounded(
            redis::cmd("GET")
                .arg(self.position_key())
                .query_async(&mut conn),
        )
        .await
    }

    /// Appends `entries` to their partitions' streams and sets the relay
    /// position to `position`, all at once, if `owner` holds the relay's
    /// lock and the position still is `expected`.
    pub async fn append(
        &self,
        owner: &str,
        expected: Option<i64>,
        entries: &[Relayed],
        position: i64,
    ) -> Result<Appended, ClusterError> {
        let mut streams: Vec<u16> = entries.iter().map(|e| partition_of(e.tenant)).collect();
        streams.sort_unstable();
        streams.dedup();
        let mut conn = self.redis.conn();
        let mut call = self.scripts.append.prepare_invoke();
        call.key(self.relay_key()).key(self.position_key());
        for p in &streams {
            call.key(self.stream_key(*p));
        }
        call.arg(owner)
            .arg(expected.map(|p| p.to_string()).unwrap_or_default())
            .arg(position)
            .arg(MAX_LEN)
            .arg(GROUP);
        for e in entries {
            let p = partition_of(e.tenant);
            // KEYS is 1-based in Lua; the streams follow the two locks.
            let index = streams.binary_search(&p).unwrap_or(0) + 3;
            call.arg(index)
                .arg(e.position)
                .arg(e.event_id)
                .arg(e.tenant.to_string());
        }
        let done: i64 = bounded(call.invoke_async(&mut conn)).await?;
        Ok(match done {
            1 => Appended::Done,
            -2 => Appended::Moved,
            _ => Appended::NotHolder,
        })
    }

    /// Takes over up to `max` entries of `partition` that some consumer
    /// read but has not acknowledged for `min_idle` (a worker that died or
    /// gave the partition up), for `consumer` (XAUTOCLAIM).
    pub async fn claim(
        &self,
        partition: u16,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Entry>, ClusterError> {
        let key = self.stream_key(partition);
        let mut conn = self.redis.conn();
        let mut start = "0-0".to_owned();
        let mut out = Vec::new();
        let mut garbage = Vec::new();
        // Each call scans a bounded part of the pending list; a few calls
        // go round it (XAUTOCLAIM says where to go on).
        for _ in 0..16 {
            let reply: Result<StreamAutoClaimReply, ClusterError> = bounded(
                redis::cmd("XAUTOCLAIM")
                    .arg(&key)
                    .arg(GROUP)
                    .arg(consumer)
                    .arg(millis(min_idle))
                    .arg(&start)
                    .arg("COUNT")
                    .arg(100)
                    .query_async(&mut conn),
            )
            .await;
            let reply = match reply {
                Ok(r) => r,
                // No stream or group yet (Redis restarted): nothing to
                // claim; make them so the next read works.
                Err(ClusterError::Redis(e)) if is_code(&e, "NOGROUP") => {
                    self.ensure_group(partition).await?;
                    return Ok(out);
                }
                Err(e) => return Err(e),
            };
            for id in reply.claimed {
                match entry(partition, &id) {
                    Some(e) => out.push(e),
                    None => garbage.push(id.id),
                }
            }
            start = reply.next_stream_id;
            if start == "0-0" || out.len() >= max {
                break;
            }
        }
        if !garbage.is_empty() {
            self.ack(partition, &garbage).await?;
        }
        Ok(out)
    }

    /// Acknowledges entries of `partition` (they leave the pending list).
    pub async fn ack(&self, partition: u16, ids: &[String]) -> Result<(), ClusterError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.redis.conn();
        for chunk in ids.chunks(1000) {
            let _: i64 = bounded(
                redis::cmd("XACK")
                    .arg(self.stream_key(partition))
                    .arg(GROUP)
                    .arg(chunk)
                    .query_async(&mut conn),
            )
            .await?;
        }
        Ok(())
    }

    /// Removes the consumers of `partition`'s group other than `me` that
    /// hold no entry and have been idle for `idle`: every worker that ever
    /// ran would otherwise stay listed (a live one is added again by its
    /// next read).
    pub async fn prune_consumers(
        &self,
        partition: u16,
        me: &str,
        idle: Duration,
    ) -> Result<(), ClusterError> {
        let key = self.stream_key(partition);
        let mut conn = self.redis.conn();
        let consumers: Vec<HashMap<String, Value>> = match bounded(
            redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&key)
                .arg(GROUP)
                .query_async(&mut conn),
        )
        .await
        {
            Ok(c) => c,
            Err(ClusterError::Redis(e)) if is_code(&e, "NOGROUP") => return Ok(()),
            Err(e) => return Err(e),
        };
        let number = |c: &HashMap<String, Value>, field: &str| {
            c.get(field)
                .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok())
        };
        let limit = millis(idle);
        for c in &consumers {
            let Some(name) = c
                .get("name")
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
            else {
                continue;
            };
            if name == me || number(c, "pending") != Some(0) {
                continue;
            }
            if number(c, "idle").is_none_or(|i| i < limit) {
                continue;
            }
            let _: i64 = bounded(
                redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(&key)
                    .arg(GROUP)
                    .arg(&name)
                    .query_async(&mut conn),
            )
            .await?;
        }
        Ok(())
    }

    /// A reader with its own connection, for blocking reads.
    pub fn reader(&self) -> StreamReader {
        StreamReader {
            streams: self.clone(),
            conn: None,
        }
    }
}

/// Reads new entries for one consumer, blocking on its own connection (a
/// blocking read on the shared connection would hold up every other call
/// behind it).
pub struct StreamReader {
    streams: EventStreams,
    conn: Option<MultiplexedConnection>,
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl StreamReader {
    /// Up to `count` entries per partition that no consumer of the group
    /// has read yet, now assigned to `consumer` (XREADGROUP `>`), waiting
    /// up to `block` for the first. Creates missing streams and groups
    /// (after a Redis restart) and then returns none.
    pub async fn read(
        &mut self,
        consumer: &str,
        partitions: &[u16],
        count: usize,
        block: Duration,
    ) -> Result<Vec<Entry>, ClusterError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CALL_TIMEOUT))
                    .set_response_timeout(Some(block + CALL_TIMEOUT));
                let client = self.streams.redis.client();
                let conn =
                    bounded(client.get_multiplexed_async_connection_with_config(&config)).await?;
                self.conn.insert(conn)
            }
        };
        let keys: Vec<String> = partitions
            .iter()
            .map(|p| self.streams.stream_key(*p))
            .collect();
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(millis(block))
            .arg("STREAMS")
            .arg(&keys);
        for _ in &keys {
            cmd.arg(">");
        }
        let reply = tokio::time::timeout(
            block + CALL_TIMEOUT,
            cmd.query_async::<Option<StreamReadReply>>(conn),
        )
        .await;
        let reply = match reply {
            Ok(Ok(r)) => r,
            Ok(Err(e)) if is_code(&e, "NOGROUP") => {
                for p in partitions {
                    self.streams.ensure_group(*p).await?;
                }
                return Ok(Vec::new());
            }
            Ok(Err(e)) => {
                // A broken connection is not reused: the next read opens
                // a new one.
                self.conn = None;
                return Err(e.into());
            }
            Err(_) => {
                self.conn = None;
                return Err(ClusterError::Timeout(block + CALL_TIMEOUT));
            }
        };
        let Some(reply) = reply else {
            return Ok(Vec::new());
        };
        let by_key: HashMap<&str, u16> = keys
            .iter()
            .map(String::as_str)
            .zip(partitions.iter().copied())
            .collect();
        let mut out = Vec::new();
        for stream in reply.keys {
            let Some(&partition) = by_key.get(stream.key.as_str()) else {
                continue;
            };
            let mut garbage = Vec::new();
            for id in &stream.ids {
                match entry(partition, id) {
                    Some(e) => out.push(e),
                    None => garbage.push(id.id.clone()),
                }
            }
            // An entry this version cannot read would sit in the pending
            // list for ever: acknowledge it.
            if !garbage.is_empty() {
                tracing::debug!(
                    partition,
                    count = garbage.len(),
                    "delivery stream: malformed entries acknowledged"
                );
                self.streams.ack(partition, &garbage).await?;
            }
        }
        Ok(out)
    }
}

/// Reads a stream entry's fields; `None` for a malformed one.
fn entry(partition: u16, id: &StreamId) -> Option<Entry> {
    let field = |name: &str| id.map.get(name);
    let number = |name: &str| field(name).and_then(|v| redis::from_redis_value_ref::<i64>(v).ok());
    let tenant = field("tenant")
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
        .and_then(|t| Uuid::parse_str(&t).ok())?;
    Some(Entry {
        partition,
        id: id.id.clone(),
        position: number("position")?,
        event_id: number("id")?,
        tenant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_always_lands_in_the_same_partition() {
        // Fixed ids: the mapping must never change between versions (every
        // worker and relay must agree on it).
        let cases = [
            ("00000000-0000-0000-0000-000000000000", 0),
            ("00000000-0000-0007-0000-000000000000", 7),
            ("00000000-0000-001f-ffff-ffffffffffff", 15),
            ("ffffffff-ffff-fff0-0000-000000000000", 0),
            ("6f9619ff-8b86-d011-b42d-00c04fc964ff", 0x11 % 16),
        ];
        for (text, want) in cases {
            let id = Uuid::parse_str(text).expect("uuid");
            assert_eq!(partition_of(id), want, "{text}");
        }
        let id = Uuid::new_v4();
        assert_eq!(partition_of(id), partition_of(id));
    }

    #[test]
    fn tenants_spread_over_every_partition() {
        let mut counts = [0u32; PARTITIONS as usize];
        for _ in 0..16_000 {
            counts[usize::from(partition_of(Uuid::new_v4()))] += 1;
        }
        // 1,000 expected each; random ids stay well within these bounds.
        for (p, n) in counts.iter().enumerate() {
            assert!((700..1300).contains(n), "partition {p}: {n}");
        }
    }

    #[test]
    fn the_share_covers_every_partition() {
        assert_eq!(share(16, 0), 16, "no heartbeat seen yet: all");
        assert_eq!(share(16, 1), 16);
        assert_eq!(share(16, 2), 8);
        assert_eq!(share(16, 3), 6);
        assert_eq!(share(16, 5), 4);
        assert_eq!(share(16, 16), 1);
        assert_eq!(share(16, 40), 1, "more workers than partitions: one each");
        for live in 1..=40u64 {
            let s = u64::from(share(PARTITIONS, live));
            assert!(
                s * live >= u64::from(PARTITIONS),
                "{live} workers leave none out"
            );
            assert!(
                (s - 1) * live < u64::from(PARTITIONS),
                "{live} workers: the smallest such share"
            );
        }
    }

    #[test]
    fn entries_are_read_back_and_malformed_ones_refused() {
        let tenant = Uuid::new_v4();
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let mut id = StreamId {
            id: "1-0".into(),
            ..StreamId::default()
        };
        id.map.insert("position".into(), bulk("42"));
        id.map.insert("id".into(), bulk("17"));
        id.map.insert("tenant".into(), bulk(&tenant.to_string()));
        assert_eq!(
            entry(3, &id),
            Some(Entry {
                partition: 3,
                id: "1-0".into(),
                position: 42,
                event_id: 17,
                tenant,
            })
        );
        id.map.insert("tenant".into(), bulk("nope"));
        assert_eq!(entry(3, &id), None);
        id.map.insert("tenant".into(), bulk(&tenant.to_string()));
        id.map.remove("position");
        assert_eq!(entry(3, &id), None);
    }
}

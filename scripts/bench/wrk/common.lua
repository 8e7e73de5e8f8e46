-- Shared by the wrk scripts of scripts/bench-peers (one per operation).
-- Each operation's script loads this file, then defines request().
--
-- Arguments (after `--` on wrk's command line):
--   1: the bearer token ("-" for none)
--   2: the directory holding users.tsv and groups.tsv (scripts/bench/seed.py)
--   3: a run id, unique per run (userNames of `create`)
--   4: the lag of group member PATCHes, in requests (see group_patch_request)
-- The SCIM base path is the path of wrk's URL (wrk.path).
--
-- Every response outside 200-299 is counted; done() prints one line
-- `BENCH {json}` with the figures scripts/bench-peers reads.

local USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
local PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

base = nil
users = {}     -- users[i] = {name, id}; index i - 1 is the seed's user number
groups = {}    -- groups[g] = id; index g - 1 is the seed's group number
non2xx = 0
run_id = "run"
lag = 128
created = 0
pending = {}   -- member additions not yet removed, oldest first:
pending_head = 1 -- pending[pending_head .. pending_tail]
pending_tail = 0

local function read_lines(path)
  local lines = {}
  local f = assert(io.open(path, "r"), "cannot open " .. path)
  for line in f:lines() do
    if line ~= "" then
      lines[#lines + 1] = line
    end
  end
  f:close()
  return lines
end

function init(args)
  base = wrk.path:gsub("/+$", "")
  local token = args[1] or "-"
  local data = args[2]
  run_id = args[3] or "run"
  lag = tonumber(args[4] or "128")
  if token ~= "-" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
  wrk.headers["Content-Type"] = "application/scim+json"
  wrk.headers["Accept"] = "application/scim+json"
  if data and data ~= "-" then
    for _, line in ipairs(read_lines(data .. "/users.tsv")) do
      local name, id = line:match("^([^\t]+)\t([^\t]+)$")
      users[#users + 1] = { name, id }
    end
    groups = read_lines(data .. "/groups.tsv")
  end
  math.randomseed(os.time() + (id or 0))
  build_reads()
end

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local function random_user()
  return users[math.random(#users)]
end

-- wrk calls request() once in its main Lua state, where init() never ran,
-- to check that it returns one request: give it a plain GET there.
local function guard(fn)
  return function()
    if base == nil then
      return wrk.format("GET", wrk.path)
    end
    return fn()
  end
end

-- Escapes a string for a JSON string literal (ids and names here are
-- plain ASCII; quotes and backslashes are all that can occur).
local function js(s)
  return (s:gsub('[\\"]', "\\%0"))
end

-- The reads are built once, in init(): formatting a request per call
-- costs wrk's single thread a third of its rate, and against the bare
-- server wrk's core is the limit.
filter_requests = {}
get_requests = {}

function build_reads()
  for i, user in ipairs(users) do
    local filter = 'userName eq "' .. user[1] .. '"'
    filter_requests[i] = wrk.format("GET", base .. "/Users?filter=" .. urlencode(filter))
    get_requests[i] = wrk.format("GET", base .. "/Users/" .. user[2])
  end
end

filter_request = guard(function()
  return filter_requests[math.random(#filter_requests)]
end)

get_request = guard(function()
  return get_requests[math.random(#get_requests)]
end)

patch_user_request = guard(function()
  local user = random_user()
  local body = '{"schemas":["' .. PATCH_OP .. '"],"Operations":[{"op":"replace",'
    .. '"path":"name.givenName","value":"Given' .. math.random(1000000) .. '"}]}'
  return wrk.format("PATCH", base .. "/Users/" .. user[2], nil, body)
end)

-- One member change: add user u to a group g it is not in (the seed put
-- user i in group i % #groups), or remove a member added `lag` requests
-- earlier. The lag keeps a removal behind its addition although the two
-- travel on different connections: wrk's Lua does not know which
-- connection a request goes out on or which request a response answers.
group_patch_request = guard(function()
  local body, gid
  if pending_tail - pending_head + 1 >= lag then
    local pair = pending[pending_head]
    pending[pending_head] = nil
    pending_head = pending_head + 1
    gid = pair[1]
    body = '{"schemas":["' .. PATCH_OP .. '"],"Operations":[{"op":"remove",'
      .. '"path":"members[value eq \\"' .. js(pair[2]) .. '\\"]"}]}'
  else
    local i = math.random(#users)
    local ng = #groups
    local home = (i - 1) % ng
    local g = (home + math.random(ng - 1)) % ng
    gid = groups[g + 1]
    local uid = users[i][2]
    pending_tail = pending_tail + 1
    pending[pending_tail] = { gid, uid }
    body = '{"schemas":["' .. PATCH_OP .. '"],"Operations":[{"op":"add",'
      .. '"path":"members","value":[{"value":"' .. js(uid) .. '"}]}]}'
  end
  return wrk.format("PATCH", base .. "/Groups/" .. gid, nil, body)
end)

create_request = guard(function()
  created = created + 1
  local n = string.format("%s-%d-%d", run_id, id or 0, created)
  local name = "bench.new-" .. n .. "@example.test"
  local body = '{"schemas":["' .. USER_SCHEMA .. '"],"userName":"' .. name .. '",'
    .. '"externalId":"new-' .. n .. '",'
    .. '"name":{"formatted":"New User","familyName":"User","givenName":"New"},'
    .. '"displayName":"New User","emails":[{"primary":true,"type":"work","value":"' .. name .. '"}],'
    .. '"active":true}'
  return wrk.format("POST", base .. "/Users", nil, body)
end)

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    'BENCH {"requests":%d,"seconds":%.3f,"rps":%.1f,"non2xx":%d,'
      .. '"socket_errors":%d,"timeouts":%d,"p50_ms":%.3f,"p99_ms":%.3f}\n',
    summary.requests, secs, summary.requests / secs, bad,
    e.connect + e.read + e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end

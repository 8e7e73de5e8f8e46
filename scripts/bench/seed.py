#!/usr/bin/env python3
"""Seeds a SCIM server for scripts/bench-peers: the same users and groups,
with the same bodies, whichever server it is.

    seed.py --url SCIM_BASE_URL [--token TOKEN] --users N --groups G
            --out DIR [--concurrency C]

Creates N Entra-shaped users (POST /Users: userName, externalId, name,
displayName, emails, active), then G groups (POST /Groups, no members),
then puts user i into group i % G with PATCH `add` operations of up to 100
members each. Writes DIR/users.tsv (line i+1: userName TAB id of user i)
and DIR/groups.tsv (line g+1: the id of group g) for the wrk scripts.
Standard library only; one keep-alive connection per worker thread (a
server that closes after each response gets a new one per request).
Prints one JSON line (with the requests retried after a broken
connection); exits non-zero on the first non-2xx reply, printing it.
"""

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MEMBERS_PER_PATCH = 100
TIMEOUT_SECS = 60
TRIES = 10


def user_name(i):
    return f"bench.user{i:07d}@example.test"


def user_body(i):
    name = user_name(i)
    return {
        "schemas": [USER_SCHEMA],
        "userName": name,
        "externalId": f"00000000-0000-4000-8000-{i:012x}",
        "name": {"formatted": f"Bench User{i}", "familyName": f"User{i}", "givenName": "Bench"},
        "displayName": f"Bench User{i}",
        "emails": [{"primary": True, "type": "work", "value": name}],
        "active": True,
    }


def group_name(g):
    return f"bench group {g:05d}"


def group_body(g):
    return {
        "schemas": [GROUP_SCHEMA],
        "displayName": group_name(g),
        "externalId": f"00000000-0000-4000-9000-{g:012x}",
        "members": [],
    }


class Client:
    """One connection per thread, reopened when the server closed it."""

    def __init__(self, url, token):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"seed.py: loopback http URLs only, not {url}")
        self.host = parsed.hostname
        self.port = parsed.port or 80
        self.base = parsed.path.rstrip("/")
        self.headers = {"Content-Type": "application/scim+json", "Accept": "application/scim+json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.local = threading.local()
        self.lock = threading.Lock()
        self.retries = 0

    def _conn(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_SECS)
            self.local.conn = conn
        return conn

    def _send(self, method, path, body):
        """One request; None when the connection broke before a reply."""
        data = None if body is None else json.dumps(body).encode()
        conn = self._conn()
        try:
            conn.request(method, self.base + path, body=data, headers=self.headers)
            resp = conn.getresponse()
            payload = resp.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            conn.close()
            self.local.conn = None
            return None
        if resp.will_close:
            conn.close()
            self.local.conn = None
        return resp.status, payload

    def call(self, method, path, body, lookup=None):
        """Sends a request, again (up to TRIES times, backing off) when the connection
        broke before a reply: a kept-alive connection the server had just
        closed, or a server that resets connections under load. Such a
        request may have been processed: a retried POST answered 409 is
        then looked up with the filter `lookup` instead."""
        retried = False
        for attempt in range(TRIES):
            reply = self._send(method, path, body)
            if reply is not None:
                break
            retried = True
            with self.lock:
                self.retries += 1
            time.sleep(min(1.0, 0.01 * 2**attempt))
        else:
            raise SystemExit(f"seed.py: {method} {path}: the connection broke {TRIES} times")
        status, payload = reply
        if status == 409 and retried and lookup:
            found = self.call("GET", f"{path}?filter={urllib.parse.quote(lookup)}", None)
            if found.get("Resources"):
                return found["Resources"][0]
        if not 200 <= status < 300:
            raise SystemExit(
                f"seed.py: {method} {path} answered {status}: {payload[:500].decode(errors='replace')}"
            )
        return json.loads(payload) if payload else {}


def run_all(pool, fn, items):
    return list(pool.map(fn, items))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--groups", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    client = Client(args.url, args.token)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        users = run_all(
            pool,
            lambda i: client.call("POST", "/Users", user_body(i), f'userName eq "{user_name(i)}"')["id"],
            range(args.users),
        )
        groups = run_all(
            pool,
            lambda g: client.call("POST", "/Groups", group_body(g), f'displayName eq "{group_name(g)}"')["id"],
            range(args.groups),
        )
        patches = []
        for g in range(args.groups):
            members = users[g :: args.groups]
            for k in range(0, len(members), MEMBERS_PER_PATCH):
                patches.append((g, members[k : k + MEMBERS_PER_PATCH]))

        def add_members(item):
            g, ids = item
            body = {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": i} for i in ids]}],
            }
            client.call("PATCH", f"/Groups/{groups[g]}", body)

        run_all(pool, add_members, patches)
    elapsed = time.monotonic() - start

    with open(f"{args.out}/users.tsv", "w") as f:
        for i, uid in enumerate(users):
            f.write(f"{user_name(i)}\t{uid}\n")
    with open(f"{args.out}/groups.tsv", "w") as f:
        for gid in groups:
            f.write(f"{gid}\n")
    requests = args.users + args.groups + len(patches)
    print(
        json.dumps(
            {
                    "users": args.users,
                    "groups": args.groups,
                    "requests": requests,
                    "retries": client.retries,
                    "seconds": round(elapsed, 2),
                }
        )
    )


if __name__ == "__main__":
    sys.exit(main())

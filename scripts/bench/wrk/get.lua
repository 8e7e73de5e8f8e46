-- scripts/bench-peers: the `get` operation (see common.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

request = get_request

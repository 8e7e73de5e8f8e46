-- scripts/bench-peers: the `filter` operation (see common.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

request = filter_request

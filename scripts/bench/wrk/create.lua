-- scripts/bench-peers: the `create` operation (see common.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

request = create_request

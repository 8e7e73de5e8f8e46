-- scripts/bench-peers: the `patch_user` operation (see common.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

request = patch_user_request

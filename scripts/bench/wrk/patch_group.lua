-- scripts/bench-peers: the `patch_group` operation (see common.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

request = group_patch_request

-- scripts/bench-peers: the `mix` operation (see common.lua): 60% userName
-- filters, 25% user PATCHes, 15% group member PATCHes.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

function request()
  local r = math.random(100)
  if r <= 60 then
    return filter_request()
  elseif r <= 85 then
    return patch_user_request()
  end
  return group_patch_request()
end

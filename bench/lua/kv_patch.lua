-- raftgate (NGINX Plus API) change of an EXISTING key per request:
--   PATCH <url> {"<seeded key>":"<value>"}  -> 204
-- (PATCH of a missing key answers 404, so this cycles over the seeded keys.)
-- args: [1] seed prefix, [2] number of seeded keys N, [3] the value to write
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local next_request

function init(args)
  local value = jstr(args[3] or string.rep("v", 16))
  local hdrs = { ["Content-Type"] = "application/json" }
  next_request = seeded(args, function(key)
    return wrk.format("PATCH", nil, hdrs, '{' .. jstr(key) .. ':' .. value .. '}')
  end)
end

function request()
  return next_request()
end

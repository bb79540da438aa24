-- raftgate (NGINX Plus API) change of an EXISTING key per request:
--   PATCH <url> {"<seeded key>":"<value>"}  -> 204
-- (PATCH of a missing key answers 404, so this cycles over the seeded keys.)
-- args: [1] seed prefix, [2] number of seeded keys N, [3] the value to write
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local reqs = {}
local n = 0
local i = 0

function init(args)
  local prefix = args[1] or "seed-"
  n = tonumber(args[2] or "256")
  local value = jstr(args[3] or string.rep("v", 16))
  local hdrs = { ["Content-Type"] = "application/json" }
  for k = 0, n - 1 do
    reqs[k] = wrk.format("PATCH", nil, hdrs, '{' .. jstr(seed_key(prefix, k)) .. ':' .. value .. '}')
  end
  i = (tid or 1) * 7919
end

function request()
  i = i + 1
  return reqs[i % n]
end

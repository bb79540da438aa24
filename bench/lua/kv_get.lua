-- raftgate (NGINX Plus API) read of one seeded key per request (linearizable by default):
--   GET <url>?key=<seeded key>  -> 200 {"<key>":"<value>"}
-- args: [1] seed prefix (URL-safe characters only), [2] number of seeded keys N
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local reqs = {}
local n = 0
local i = 0

function init(args)
  local prefix = args[1] or "seed-"
  n = tonumber(args[2] or "256")
  for k = 0, n - 1 do
    reqs[k] = wrk.format("GET", wrk.path .. "?key=" .. seed_key(prefix, k))
  end
  i = (tid or 1) * 7919
end

function request()
  i = i + 1
  return reqs[i % n]
end

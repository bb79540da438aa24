-- etcd v3 JSON gateway read of one seeded key per request:
--   POST <url> {"key":b64}                  url: http://host:port/v3/kv/range
-- Linearizable (etcd's default: ReadIndex) unless args[3] is "serializable".
-- args: [1] seed prefix, [2] number of seeded keys N (keys <prefix>0000..N-1)
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local reqs = {}
local n = 0
local i = 0

function init(args)
  local prefix = args[1] or "seed-"
  n = tonumber(args[2] or "256")
  local ser = (args[3] == "serializable") and ',"serializable":true' or ""
  local hdrs = { ["Content-Type"] = "application/json" }
  for k = 0, n - 1 do
    reqs[k] = wrk.format("POST", nil, hdrs, '{"key":"' .. b64(seed_key(prefix, k)) .. '"' .. ser .. '}')
  end
  i = (tid or 1) * 7919
end

function request()
  i = i + 1
  return reqs[i % n]
end

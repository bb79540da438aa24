-- etcd v3 JSON gateway read of one seeded key per request:
--   POST <url> {"key":b64}                  url: http://host:port/v3/kv/range
-- Linearizable (etcd's default: ReadIndex) unless args[3] is "serializable".
-- args: [1] seed prefix, [2] number of seeded keys N (keys <prefix>0000..N-1)
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local next_request

function init(args)
  local ser = (args[3] == "serializable") and ',"serializable":true' or ""
  local hdrs = { ["Content-Type"] = "application/json" }
  next_request = seeded(args, function(key)
    return wrk.format("POST", nil, hdrs, '{"key":"' .. b64(key) .. '"' .. ser .. '}')
  end)
end

function request()
  return next_request()
end

-- etcd v3 JSON gateway write of a NEW key per request:
--   POST <url> {"key":b64,"value":b64}      url: http://host:port/v3/kv/put
-- args: [1] key prefix, [2] value size in bytes (default 16)
-- Keys: <prefix><tid>-<counter>, the same names kv_post.lua writes into raftgate.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local prefix, value
local counter = 0
local hdrs = { ["Content-Type"] = "application/json" }

function init(args)
  prefix = (args[1] or "bench-") .. tostring(tid or 0) .. "-"
  value = b64(string.rep("v", tonumber(args[2] or "16")))
end

function request()
  counter = counter + 1
  local body = '{"key":"' .. b64(prefix .. counter) .. '","value":"' .. value .. '"}'
  return wrk.format("POST", nil, hdrs, body)
end

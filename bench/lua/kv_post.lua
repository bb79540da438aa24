-- raftgate (NGINX Plus API) write of a NEW key per request:
--   POST <url> {"<key>":"<value>"}  -> 201    url: http://host:port/api/2/http/keyvals/ZONE
-- args: [1] key prefix, [2] value size in bytes (default 16)
-- Keys: <prefix><tid>-<counter>, the same names etcd_put.lua writes into etcd.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local prefix, value
local counter = 0
local hdrs = { ["Content-Type"] = "application/json" }

function init(args)
  prefix = (args[1] or "bench-") .. tostring(tid or 0) .. "-"
  value = jstr(string.rep("v", tonumber(args[2] or "16")))
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, hdrs, '{' .. jstr(prefix .. counter) .. ':' .. value .. '}')
end

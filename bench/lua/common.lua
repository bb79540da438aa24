-- Shared helpers for the bench/writes.sh wrk scripts (wrk 4.1 / LuaJIT).
-- Loaded by each of them with: dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
-- (writes.sh exports BENCH_LUA_DIR; get.lua, used by proxy.sh, stands alone).
--
--  * setup():   gives each wrk thread a distinct global `tid` (1..N), so that scripts
--               generate distinct keys without coordination.
--  * b64():     base64 encoder (etcd's JSON gateway wants base64 keys and values).
--  * jstr():    a JSON string literal for the ASCII keys and values generated here.
--  * seed_key(): the name of seeded key K: <prefix>0000, <prefix>0001, ... (the same
--               names benchutil.py kv-reset / etcd-seed write).
--  * done():    prints ONE machine-readable line that writes.sh parses:
--               BENCHRESULT requests=.. rps=.. p50_us=.. p99_us=.. err_*=..
--               err_status counts responses with status >= 400 (wrk's "Non-2xx or 3xx").
--
-- Note: wrk calls request() once on thread 1 to validate the script before the run and
-- discards it, so a counter-based key sequence starts at its second value there.

local bit = require("bit")
local band, rshift = bit.band, bit.rshift

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local ch = {}
for i = 1, 64 do ch[i - 1] = B64:sub(i, i) end

function b64(s)
  local out, n = {}, #s
  local i = 1
  while i + 2 <= n do
    local a, b, c = s:byte(i, i + 2)
    local v = a * 65536 + b * 256 + c
    out[#out + 1] = ch[rshift(v, 18)] .. ch[band(rshift(v, 12), 63)]
                 .. ch[band(rshift(v, 6), 63)] .. ch[band(v, 63)]
    i = i + 3
  end
  local rem = n - i + 1
  if rem == 1 then
    local v = s:byte(i) * 65536
    out[#out + 1] = ch[rshift(v, 18)] .. ch[band(rshift(v, 12), 63)] .. "=="
  elseif rem == 2 then
    local a, b = s:byte(i, i + 1)
    local v = a * 65536 + b * 256
    out[#out + 1] = ch[rshift(v, 18)] .. ch[band(rshift(v, 12), 63)]
                 .. ch[band(rshift(v, 6), 63)] .. "="
  end
  return table.concat(out)
end

function jstr(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

function seed_key(prefix, k)
  return prefix .. string.format("%04d", k)
end

-- One prebuilt request per seeded key (args: [1] seed prefix, [2] count N), built by
-- build(key) and served round robin from a per-thread starting point. Returns the
-- function a script's request() calls (wrk needs request() defined at load time).
function seeded(args, build)
  local prefix = args[1] or "seed-"
  local n = tonumber(args[2] or "256")
  local reqs = {}
  for k = 0, n - 1 do
    reqs[k] = build(seed_key(prefix, k))
  end
  local i = (tid or 1) * 7919
  return function()
    i = i + 1
    return reqs[i % n]
  end
end

local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

function done(summary, latency, requests)
  local dur_s = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "BENCHRESULT requests=%d duration_s=%.3f rps=%.1f mean_us=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, dur_s, summary.requests / dur_s, latency.mean,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end

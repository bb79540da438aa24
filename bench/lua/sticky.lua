-- bench/sticky.py: a client population where a fraction NEW_PCT of requests start a new
-- session (no cookie) and the rest come back with a session learned earlier in the run.
-- Each wrk thread keeps the sessions its responses created (Set-Cookie: sid=...).
local new_pct = tonumber(os.getenv("NEW_PCT") or "100")
local pool, n = {}, 0
local cap = 4096

function request()
  if n == 0 or math.random() * 100 < new_pct then
    return wrk.format("GET", "/", { Host = "bench" })
  end
  local sid = pool[math.random(n)]
  return wrk.format("GET", "/", { Host = "bench", Cookie = "sid=" .. sid })
end

function response(status, headers, body)
  local c = headers["Set-Cookie"] or headers["set-cookie"]
  if c then
    local sid = c:match("sid=([^;]+)")
    if sid then
      if n < cap then
        n = n + 1
        pool[n] = sid
      else
        pool[math.random(cap)] = sid
      end
    end
  end
end

function done(summary, latency, requests)
  io.write(string.format("BENCHRESULT requests=%d rps=%.1f p50_us=%d p99_us=%d errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end

-- bench/jwt.py: each request carries one of the tokens in the file TOKENS (one per line),
-- in turn, as `Authorization: Bearer ...`; without TOKENS, no header.
local tokens, n, i = {}, 0, 0
local path = os.getenv("TOKENS")
if path and path ~= "" then
  for line in io.lines(path) do
    n = n + 1
    tokens[n] = line
  end
end

function request()
  if n == 0 then
    return wrk.format("GET", "/", { Host = "bench" })
  end
  i = i % n + 1
  return wrk.format("GET", "/", { Host = "bench", Authorization = "Bearer " .. tokens[i] })
end

function done(summary, latency, requests)
  io.write(string.format("BENCHRESULT requests=%d rps=%.1f p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end

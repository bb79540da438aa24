-- Plain GET of the URL given on the wrk command line (one static request,
-- keep-alive). At the end prints ONE machine-readable line that proxy.sh parses:
--   BENCHRESULT requests=.. duration_s=.. rps=.. p50_us=.. p99_us=.. err_*=..
-- wrk counts any response with status >= 400 as err_status.

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

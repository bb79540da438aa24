-- Plain GET of the URL given on the wrk command line (one static request,
-- keep-alive). At the end prints ONE machine-readable line that proxy.sh parses:
--   BENCHRESULT requests=.. duration_s=.. rps=.. p50_us=.. p99_us=.. err_*=..
-- wrk counts any response with status >= 400 as err_status. (done() is common.lua's.)
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

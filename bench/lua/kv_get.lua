-- raftgate (NGINX Plus API) read of one seeded key per request (linearizable by default):
--   GET <url>?key=<seeded key>  -> 200 {"<key>":"<value>"}
-- args: [1] seed prefix (URL-safe characters only), [2] number of seeded keys N
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local next_request

function init(args)
  next_request = seeded(args, function(key)
    return wrk.format("GET", wrk.path .. "?key=" .. key)
  end)
end

function request()
  return next_request()
end

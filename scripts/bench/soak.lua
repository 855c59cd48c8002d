-- wrk script for scripts/soak.sh: every request buys one unit of item $ITEM
-- as a new shopper. Users are named by $RUN (the soak's window), the wrk
-- thread and a counter, so no two requests of a soak share a user.
-- Prints one line of key=value pairs: the window's figures.
counter = 0
threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  counter = 0
  prefix = "s" .. (os.getenv("RUN") or os.time()) .. "-" .. tid .. "-"
  item = os.getenv("ITEM") or "soak"
end

request = function()
  counter = counter + 1
  return wrk.format("POST", "/v1/items/" .. item .. "/purchase",
    {["Content-Type"] = "application/json", ["X-User-ID"] = prefix .. counter},
    '{"quantity":1}')
end

done = function(summary, latency, requests)
  io.write(string.format("requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

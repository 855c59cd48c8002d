-- wrk script for scripts/bench-scale.sh and scripts/soak.sh: every request buys one unit of a
-- random item among $ITEMS items named $PREFIX1..$PREFIX$ITEMS, as a new
-- shopper. Shoppers are named by $RUN, the run's start time, the wrk
-- thread and a counter: no two requests share one, across wrk processes
-- and runs.
counter = 0
threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  counter = 0
  prefix = "s" .. (os.getenv("RUN") or "") .. "-" .. os.time() .. "-" .. tid .. "-"
  items = tonumber(os.getenv("ITEMS") or "1")
  item = os.getenv("PREFIX") or "item-"
  math.randomseed(os.time() * 131 + tid)
end

request = function()
  counter = counter + 1
  return wrk.format("POST", "/v1/items/" .. item .. math.random(1, items) .. "/purchase",
    {["Content-Type"] = "application/json", ["X-User-ID"] = prefix .. counter},
    '{"quantity":1}')
end

done = function(summary, latency, requests)
  io.write(string.format("p50_us=%d p99_us=%d max_us=%d requests=%d non2xx=%d errors=%d duration_us=%d\n",
    latency:percentile(50), latency:percentile(99), latency.max, summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration))
end

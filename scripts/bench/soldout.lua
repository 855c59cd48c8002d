-- wrk script for scripts/bench-scale.sh (runs E1/E6): what most of a flash
-- crowd asks once an item is gone. Requests alternate between a read of a
-- random sold-out item among $ITEMS named $PREFIX1..$PREFIX$ITEMS and a
-- purchase of it by a new shopper (409 sold_out). 200 and 409 are the
-- expected answers; anything else counts in non2xx.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter, good, bad = 0, 0, 0
  prefix = "e" .. (os.getenv("RUN") or "") .. "-" .. os.time() .. "-" .. tid .. "-"
  items = tonumber(os.getenv("ITEMS") or "1")
  item = os.getenv("PREFIX") or "so-"
  math.randomseed(os.time() * 131 + tid)
end

request = function()
  counter = counter + 1
  local it = item .. math.random(1, items)
  if counter % 2 == 0 then
    return wrk.format("GET", "/v1/items/" .. it)
  end
  return wrk.format("POST", "/v1/items/" .. it .. "/purchase",
    {["Content-Type"] = "application/json", ["X-User-ID"] = prefix .. counter},
    '{"quantity":1}')
end

response = function(status, headers, body)
  if status == 200 or status == 409 then
    good = good + 1
  else
    bad = bad + 1
  end
end

done = function(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do
    b = b + t:get("bad")
  end
  io.write(string.format("p50_us=%d p99_us=%d max_us=%d requests=%d non2xx=%d errors=%d duration_us=%d\n",
    latency:percentile(50), latency:percentile(99), latency.max, summary.requests, b,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration))
end

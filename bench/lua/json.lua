-- wrk script for bench/load.sh: the REST/JSON face, keep-alive. POSTs the JSON body (or GETs
-- when there is none) with the partner's credentials in headers, and prints one
-- machine-readable RESULT line at the end (the same as soap.lua's).
--   REST_BODY     file with the JSON body; empty or unset: a GET
--   REST_PARTNER  the partner id (X-Partner-Id, required)
--   REST_KEY      the API key (Authorization: Bearer, required)
-- The path (with its query) is the URL wrk is given. Any non-2xx answer counts as an error.

local path = os.getenv("REST_BODY")
if path and path ~= "" then
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
else
  wrk.method = "GET"
end
wrk.headers["X-Partner-Id"] = assert(os.getenv("REST_PARTNER"), "REST_PARTNER is not set")
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("REST_KEY"), "REST_KEY is not set")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d bytes=%d " ..
    "errors=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.max, summary.bytes,
    e.connect + e.read + e.write + e.status + e.timeout))
end

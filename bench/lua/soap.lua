-- wrk script for bench/load.sh: POST one SOAP 1.1 envelope on every request (keep-alive) and
-- print one machine-readable RESULT line at the end.
--   SOAP_BODY    file with the envelope (required)
--   SOAP_ACTION  the operation's SOAPAction, sent quoted (required)
-- Any non-2xx answer counts as an error (wrk's status errors).

local path = assert(os.getenv("SOAP_BODY"), "SOAP_BODY is not set")
local f = assert(io.open(path, "rb"))
local envelope = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = envelope
wrk.headers["Content-Type"] = "text/xml; charset=utf-8"
wrk.headers["SOAPAction"] = '"' .. assert(os.getenv("SOAP_ACTION"), "SOAP_ACTION is not set") .. '"'

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d bytes=%d " ..
    "errors=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.max, summary.bytes,
    e.connect + e.read + e.write + e.status + e.timeout))
end

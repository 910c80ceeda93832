-- wrk.lua - request setup and machine-readable summary for scripts/bench.sh.
--
-- Environment (all optional):
--   BENCH_BODY_FILE  POST this file's bytes as application/json (else GET)
--   BENCH_TOKEN      send "Authorization: Bearer <token>"
-- done() prints one line that bench.sh parses:
--   BENCH rps=<req/s> p50_us=<us> p99_us=<us> requests=<n> non2xx=<n> sockerr=<n>
-- non2xx is wrk's "status" error count (answers >= 400); sockerr adds
-- connect/read/write errors and timeouts.

local body_file = os.getenv("BENCH_BODY_FILE")
local token = os.getenv("BENCH_TOKEN")

if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH rps=%.1f p50_us=%d p99_us=%d requests=%d non2xx=%d sockerr=%d\n",
    summary.requests / secs,
    latency:percentile(50), latency:percentile(99),
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end

-- wrk script for scripts/bench: one request shape for every system, and the
-- results as one JSON line, so the report does not parse wrk's text.
--
-- Settings come from the environment (read once per wrk thread):
--   BENCH_OUT       file the JSON line is written to (required)
--   BENCH_METHOD    GET (default) or POST
--   BENCH_BODY      request body, sent form-encoded
--   BENCH_AUTH      value of the Authorization header
--   BENCH_DELAY_MS  pause of each connection between its requests: a fixed
--                   offered load of about connections * 1000 / delay per
--                   second, as long as answers come faster than the pause.
--                   wrk starts the latency clock after the pause.

local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local auth = os.getenv("BENCH_AUTH")
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")

wrk.method = method
if body and body ~= "" then
    wrk.body = body
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
if auth and auth ~= "" then
    wrk.headers["Authorization"] = auth
end

if delay_ms and delay_ms > 0 then
    function delay()
        return delay_ms
    end
end

function done(summary, latency, requests)
    local out = assert(io.open(assert(os.getenv("BENCH_OUT"), "BENCH_OUT unset"), "w"))
    local e = summary.errors
    out:write(string.format(
        '{"requests": %d, "duration_us": %d, "bytes": %d, '
            .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
            .. '"p50_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
    out:close()
end

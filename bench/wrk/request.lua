-- One wrk script for every scenario; the request is described by environment
-- variables so that Gatehouse and the peer get byte-for-byte the same shape:
--
--   BENCH_METHOD   GET or POST (default GET)
--   BENCH_PATH     request path, e.g. /oauth/token
--   BENCH_BODY     form body (sent as application/x-www-form-urlencoded)
--   BENCH_AUTH     value of the Authorization header
--   BENCH_EXPECT   optional Lua pattern a 2xx body must match to count as a
--                  success (e.g. an introspection answer with active=true)
--
-- Every response is classified here, so the error count is exact: any status
-- outside 200-299, or a 2xx whose body does not match BENCH_EXPECT, is an
-- error. Socket errors (connect, read, write, timeout) come from wrk itself.
-- done() prints one line "BENCH_RESULT {json}" for the runner to parse.

local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body = os.getenv("BENCH_BODY")
local auth = os.getenv("BENCH_AUTH")
local expect = os.getenv("BENCH_EXPECT")
if expect == "" then expect = nil end
if body == "" then body = nil end

wrk.method = method
wrk.path = path
if body then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
wrk.headers["Accept"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Per-thread counters (each wrk thread has its own Lua state).
ok = 0
bad_status = 0
bad_body = 0
first_error = ""

function response(status, headers, resp_body)
  if status >= 200 and status < 300 then
    if expect and not string.find(resp_body or "", expect) then
      bad_body = bad_body + 1
      if first_error == "" then
        first_error = status .. " " .. string.sub(resp_body or "", 1, 200)
      end
    else
      ok = ok + 1
    end
  else
    bad_status = bad_status + 1
    if first_error == "" then
      first_error = status .. " " .. string.sub(resp_body or "", 1, 200)
    end
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local n_ok, n_status, n_body, sample = 0, 0, 0, ""
  for _, thread in ipairs(threads) do
    n_ok = n_ok + (thread:get("ok") or 0)
    n_status = n_status + (thread:get("bad_status") or 0)
    n_body = n_body + (thread:get("bad_body") or 0)
    local e = thread:get("first_error") or ""
    if sample == "" then sample = e end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"ok":%d,"bad_status":%d,"bad_body":%d,' ..
    '"socket_connect":%d,"socket_read":%d,"socket_write":%d,"socket_timeout":%d,' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
    '"first_error":%s}\n',
    summary.duration, summary.requests, summary.bytes,
    n_ok, n_status, n_body,
    e.connect, e.read, e.write, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    json_string(sample)))
end

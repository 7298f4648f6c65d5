-- wrk script for the interact benchmark (tests/bench/run.py builds the command line):
--
--   wrk -t1 -c8 -d10s --timeout 10s -s tests/bench/interact.lua http://127.0.0.1:PORT -- \
--       /api/v1/conversations/{user}/interact cdt_KEY RUNLABEL json|stream [users-per-thread]
--
-- Every user holds a short dialog: a `launch`, then a text turn ("I can't log in"), then the thread moves on to
-- new users. Requests rotate over `users-per-thread` users (default 64), so a user's text turn comes a whole
-- rotation after its launch, by when the launch has been answered: two turns of one user are not in flight together. User ids carry the run label and the thread number, so every run starts
-- fresh conversations. With `stream`, a 2xx response whose body lacks `data: [DONE]` counts as an error.
-- done() prints one line `WRK_RESULT {json}` for the runner.

local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local path_template, key, label, stream, users
local sent = 0
non2xx, no_done = 0, 0  -- globals, so that done() can read them with thread:get
local bodies = {
  '{"action": {"type": "launch", "payload": null}}',
  '{"action": {"type": "text", "payload": "I can\'t log in"}}',
}
local headers = {}

function init(args)
  path_template = args[1] or "/api/v1/conversations/{user}/interact"
  key = args[2] or ""
  label = args[3] or "run"
  stream = args[4] == "stream"
  users = tonumber(args[5] or "64")
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. key
  if stream then headers["Accept"] = "text/event-stream" end
end

function request()
  local slot = sent % users
  local round = math.floor(sent / users)
  sent = sent + 1
  -- round 0, 1: user block 0 (launch, text); round 2, 3: user block 1; …
  local user = string.format("%s-t%d-b%d-u%d", label, tid, math.floor(round / 2), slot)
  local path = path_template:gsub("{user}", user)
  return wrk.format("POST", path, headers, bodies[(round % 2) + 1])
end

local counts = {}
statuses, sample = "", ""  -- globals for done(): "409=3 500=1", and the first error seen

local function count_error(status, description)
  counts[status] = (counts[status] or 0) + 1
  local parts = {}
  for code, n in pairs(counts) do table.insert(parts, code .. "=" .. n) end
  statuses = table.concat(parts, " ")
  if sample == "" then sample = description end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    count_error(status, status .. " " .. (body or ""):sub(1, 300))
  elseif stream and not (body and body:find("data: [DONE]", 1, true)) then
    no_done = no_done + 1
    count_error("no_done", "no [DONE] in a stream ending with " .. (body or ""):sub(-200))
  end
end

local function json_string(s)
  return '"' .. (s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end)) .. '"'
end

function done(summary, latency, requests)
  local bad, missing, merged, parts, first = 0, 0, {}, {}, ""
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
    missing = missing + (thread:get("no_done") or 0)
    for code, n in string.gmatch(thread:get("statuses") or "", "(%S+)=(%d+)") do
      merged[code] = (merged[code] or 0) + tonumber(n)
    end
    if first == "" then first = thread:get("sample") or "" end
  end
  for code, n in pairs(merged) do table.insert(parts, json_string(code) .. ": " .. n) end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, ' ..
    '"max_ms": %.3f, "non2xx": %d, "no_done": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "statuses": {%s}, "sample": %s}\n',
    summary.requests, summary.duration, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, bad, missing, e.connect, e.read, e.write, e.timeout,
    table.concat(parts, ", "), json_string(first)))
end

-- wrk script: each thread replays its share of pre-signed callbacks (unique ids).
-- File format (bench/ingest.py writes it): one request per line, "path\tsignature\tbody".
-- Arguments: the file, the number of threads, and optionally how many lines to skip (so
-- that runs on one server can each send callbacks the others did not).
local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file = args[1]
  local nthreads = tonumber(args[2])
  local skip = tonumber(args[3] or "0")
  requests = {}
  local n = 0
  for line in io.lines(file) do
    if n >= skip and (n - skip) % nthreads == index then
      local path, signature, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
      table.insert(requests, wrk.format("POST", path, {
        ["Content-Type"] = "application/json",
        ["X-VLMRun-Signature"] = signature,
      }, body))
    end
    n = n + 1
  end
  cursor = 0
end

function request()
  cursor = cursor % #requests + 1
  return requests[cursor]
end

function response(status, headers, body)
  if status >= 300 then
    errors_seen = (errors_seen or 0) + 1
  end
end

-- wrk script: each thread replays its share of pre-signed callbacks (unique ids).
-- File format (bench/ingest.py writes it): one request per line, "path\tsignature\tbody".
local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file = args[1]
  local nthreads = tonumber(args[2])
  requests = {}
  local n = 0
  for line in io.lines(file) do
    if n % nthreads == index then
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

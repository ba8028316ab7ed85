-- wrk script: replays pre-signed requests from REQUESTS (one per line, "\n" escaped), each once
-- per thread, in order; counts non-200 answers. Used by bench/rough-check.sh.
local requests = {}
local index = 0
local non200 = 0

function init(args)
  for line in io.lines(os.getenv("REQUESTS")) do
    requests[#requests + 1] = line:gsub("\\n", "\n")
  end
end

function request()
  index = index + 1
  if index > #requests then index = 1 end
  return requests[index]
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if non200 == 1 then io.write("first non-200 answer: " .. status .. " " .. body .. "\n") end
  end
end

function done(summary, latency, requests_)
  -- With one wrk thread (-t1) the counter seen here is the run's.
  io.write(string.format("non-200 answers: %d\n", non200))
  io.write(string.format("p50 %.2f ms, p99 %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end

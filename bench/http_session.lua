-- wrk script of `make bench-http` (bench/http.sh): session act. The session ids come as the
-- script's arguments (wrk ... -- ID...), dealt out over wrk's threads; each request takes a free
-- session of its thread and the response (which names its session_id) hands it back, so that a
-- session never has two requests in flight: each connection acts in a session of its own, as one
-- robot per session would. With fewer free sessions than connections a request falls back to
-- the sessions in turn (counted, and printed at the end as "fallbacks").
-- BENCH_HTTP_PREFIX: the path up to the session id (/v1/agents/NAME/sessions/);
-- BENCH_HTTP_MODE: "plan" or "policy".
local prefix = os.getenv("BENCH_HTTP_PREFIX") or "/v1/agents/pendulum/sessions/"
local mode = os.getenv("BENCH_HTTP_MODE") or "plan"
local headers = {["Content-Type"] = "application/json"}

local threads = {}
local n_threads = 0

function setup(thread)
   thread:set("tid", n_threads)
   n_threads = n_threads + 1
   table.insert(threads, thread)
end

local all, free, in_pool = {}, {}, {}
local rr = 0
fallbacks = 0
responses = 0

function init(args)
   -- tid and the thread count: set by setup() in the main state before this thread starts
   local nt = tonumber(os.getenv("BENCH_HTTP_WRK_THREADS") or "1")
   for i, sid in ipairs(args) do
      if (i - 1) % nt == tid then
         table.insert(all, sid)
         table.insert(free, sid)
         in_pool[sid] = true
      end
   end
   assert(#all > 0, "no session ids for this wrk thread")
   math.randomseed(1234 + tid)
end

local verified = false

function request()
   if tid == 0 and not verified then
      -- wrk calls request() once on thread 0 to check it, a request it never sends: lend it a
      -- session without taking it from the pool
      verified = true
      return wrk.format("POST", prefix .. all[1] .. "/act", headers, "{}")
   end
   local sid = table.remove(free)
   if sid then
      in_pool[sid] = nil
   else
      fallbacks = fallbacks + 1
      rr = rr % #all + 1
      sid = all[rr]
   end
   -- a pendulum-like observation [cos th, sin th, th_dot] and a reward for the previous action
   local th = (math.random() * 2 - 1) * math.pi
   local thdot = (math.random() * 2 - 1) * 8
   local body = string.format(
      '{"observation":[%.5f,%.5f,%.5f],"reward":%.5f,"mode":"%s"}',
      math.cos(th), math.sin(th), thdot, -(th * th + 0.1 * thdot * thdot), mode)
   return wrk.format("POST", prefix .. sid .. "/act", headers, body)
end

function response(status, hdrs, body)
   responses = responses + 1
   local sid = body and body:match('"session_id":"([^"]+)"')
   if sid and not in_pool[sid] then
      in_pool[sid] = true
      table.insert(free, sid)
   end
end

function done(summary, latency, requests)
   local fb, rs = 0, 0
   for _, t in ipairs(threads) do
      fb = fb + (t:get("fallbacks") or 0)
      rs = rs + (t:get("responses") or 0)
   end
   io.write(string.format("session responses: %d fallbacks: %d\n", rs, fb))
end

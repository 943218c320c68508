-- wrk script of `make bench-soak` (bench/soak.sh): one kind of traffic per wrk process, chosen by
-- SOAK_KIND, with random pendulum-like observations:
--   policy   POST /v1/agents/NAME/act, "mode":"policy" (answered on the HTTP threads)
--   plan     POST /v1/agents/NAME/plan (a worker plans and returns the whole plan)
--   session  POST /v1/agents/NAME/sessions/ID/act, "mode":"plan" (a worker plans; the step is
--            recorded for training); the session ids come as the script's arguments, one per
--            connection as in bench/http_session.lua, and each session ends its episode
--            (done) every SOAK_EPISODE steps (200)
--   submit   POST /v1/agents/NAME/transitions, one random 8-step episode
-- SOAK_AGENT names the agent; SOAK_DELAY_MS (0) is a pause of each connection before each of
-- its requests (wrk's delay()), as a robot's control period. Every response is counted by
-- status, and done() prints
--   soak_status ok=N r429=N r503=N other=N
-- where r503 counts only 503s with a Retry-After header (the intended "overloaded" answer):
-- everything in `other` is an error.
local kind = os.getenv("SOAK_KIND") or "policy"
local agent = os.getenv("SOAK_AGENT") or "soak"
local episode_len = tonumber(os.getenv("SOAK_EPISODE") or "200")
local pause_ms = tonumber(os.getenv("SOAK_DELAY_MS") or "0")
local base = "/v1/agents/" .. agent
local headers = {["Content-Type"] = "application/json"}

local threads = {}
local n_threads = 0

function setup(thread)
   thread:set("tid", n_threads)
   n_threads = n_threads + 1
   table.insert(threads, thread)
end

ok, r429, r503, other = 0, 0, 0, 0
local all, free, in_pool, steps = {}, {}, {}, {}
local rr = 0

function init(args)
   math.randomseed(4321 + (tid or 0))
   if kind == "session" then
      -- wrk -t1 in bench/soak.sh: this thread has every session
      for _, sid in ipairs(args) do
         table.insert(all, sid)
         table.insert(free, sid)
         in_pool[sid] = true
         steps[sid] = 0
      end
      assert(#all > 0, "session: no session ids given (wrk ... -- ID...)")
   end
end

-- a pendulum-like observation [cos th, sin th, th_dot]
local function observation()
   local th = (math.random() * 2 - 1) * math.pi
   local thdot = (math.random() * 2 - 1) * 8
   return string.format("[%.5f,%.5f,%.5f]", math.cos(th), math.sin(th), thdot), th, thdot
end

local function episode()
   local th = (math.random() * 2 - 1) * math.pi
   local thdot = (math.random() * 2 - 1)
   local obs, acts, rews = {}, {}, {}
   for k = 0, 8 do
      obs[#obs + 1] = string.format("[%.5f,%.5f,%.5f]", math.cos(th), math.sin(th), thdot)
      if k < 8 then
         local u = math.random() * 4 - 2
         acts[#acts + 1] = string.format("[%.5f]", u)
         rews[#rews + 1] = string.format("%.5f", -(th * th + 0.1 * thdot * thdot + 0.001 * u * u))
         thdot = math.max(-8, math.min(8, thdot + (15 * math.sin(th) + 3 * u) * 0.05))
         th = th + thdot * 0.05
      end
   end
   return string.format('{"episodes":[{"observations":[%s],"actions":[%s],"rewards":[%s]}]}',
                        table.concat(obs, ","), table.concat(acts, ","), table.concat(rews, ","))
end

local verified = false

if pause_ms > 0 then
   function delay()
      return pause_ms
   end
end

function request()
   if kind == "policy" then
      return wrk.format("POST", base .. "/act", headers,
                        '{"observation":' .. observation() .. ',"mode":"policy"}')
   elseif kind == "plan" then
      return wrk.format("POST", base .. "/plan", headers, '{"observation":' .. observation() .. '}')
   elseif kind == "submit" then
      return wrk.format("POST", base .. "/transitions", headers, episode())
   end
   -- session
   if not verified then
      -- wrk calls request() once to check it, a request it never sends: lend it a session
      -- without taking it from the pool
      verified = true
      return wrk.format("POST", base .. "/sessions/" .. all[1] .. "/act", headers, "{}")
   end
   local sid = table.remove(free)
   if sid then
      in_pool[sid] = nil
   else
      rr = rr % #all + 1
      sid = all[rr]
   end
   local obs, th, thdot = observation()
   steps[sid] = steps[sid] + 1
   local done = steps[sid] >= episode_len
   if done then
      steps[sid] = 0
   end
   local body = string.format('{"observation":%s,"reward":%.5f,"mode":"plan","done":%s}', obs,
                              -(th * th + 0.1 * thdot * thdot), done and "true" or "false")
   return wrk.format("POST", base .. "/sessions/" .. sid .. "/act", headers, body)
end

function response(status, hdrs, body)
   if status >= 200 and status < 300 then
      ok = ok + 1
   elseif status == 429 then
      r429 = r429 + 1
   elseif status == 503 and (hdrs["Retry-After"] or hdrs["retry-after"]) then
      r503 = r503 + 1
   else
      other = other + 1
      if other <= 3 then
         io.write(string.format("soak_error status=%d body=%s\n", status, (body or ""):sub(1, 200)))
      end
   end
   if kind == "session" then
      local sid = body and body:match('"session_id":"([^"]+)"')
      if sid and not in_pool[sid] then
         in_pool[sid] = true
         table.insert(free, sid)
      end
   end
end

function done(summary, latency, requests)
   local t = {ok = 0, r429 = 0, r503 = 0, other = 0}
   for _, th in ipairs(threads) do
      for k, _ in pairs(t) do
         t[k] = t[k] + (th:get(k) or 0)
      end
   end
   io.write(string.format("soak_status ok=%d r429=%d r503=%d other=%d\n", t.ok, t.r429, t.r503,
                          t.other))
end

-- wrk script of `make bench-http` (bench/http.sh): POSTs one fixed JSON body, read from the file
-- named by BENCH_HTTP_BODY, to the URL given to wrk. Used for stateless act and for transition
-- submission.
local path = os.getenv("BENCH_HTTP_BODY")
local f = assert(io.open(path or "", "rb"), "BENCH_HTTP_BODY must name the body file")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

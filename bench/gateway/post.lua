-- wrk script: POSTs the JSON body in the file named by $BENCH_BODY_FILE on every request.
-- Extra headers are given to wrk with -H.
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

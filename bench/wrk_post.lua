-- wrk: POST PaddleX image-classification bodies, cycling through the JSON
-- files named after `--` on wrk's command line (bench/serve_compare.py,
-- tools/serve-replicas.sh).
local bodies = {}
function init(args)
  for i, path in ipairs(args) do
    local f = assert(io.open(path, "rb"))
    bodies[i] = f:read("*a")
    f:close()
  end
end
local n = 0
function request()
  n = n + 1
  return wrk.format("POST", "/image-classification", {["Content-Type"] = "application/json"}, bodies[n % #bodies + 1])
end

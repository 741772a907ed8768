-- Tarantool's own client (net.box) in the shape of its benchmarks: CONNS connections, each
-- with FIBERS fibers issuing one request at a time, so CONNS x FIBERS requests are in
-- flight. Prints one JSON line: op, shape, ops/s, p50/p99 in ms.
--   tarantool bench.lua PORT select|replace CONNS FIBERS SECONDS ROWS
local netbox = require('net.box')
local fiber = require('fiber')
local clock = require('clock')
local json = require('json')
local port, op = arg[1], arg[2]
local conns_n, fibers_n = tonumber(arg[3]), tonumber(arg[4])
local seconds, rows = tonumber(arg[5] or 5), tonumber(arg[6] or 10000)

local function make_user(id)
  return {id, 'user' .. id .. '@example.com', 'Full Name ' .. id, 'https://img.example.com/' .. id,
          'Engineer', 'Platform', 'Example Org', 'user', '{"theme":"dark"}',
          '{"email":true,"in_app":true,"weekly_digest":true}', true, false,
          1700000000000000 + id, 1700000000000000 + id, 1700000000000000}
end

local conns = {}
for i = 1, conns_n do
  conns[i] = netbox.connect('127.0.0.1:' .. port)
  assert(conns[i]:is_connected(), 'cannot connect to tarantool on port ' .. port)
end

local warmup_end = clock.monotonic() + 1
local stop_at = warmup_end + seconds
local lat = {}
local done, errors = 0, 0
local workers = {}
for c = 1, conns_n do
  for f = 1, fibers_n do
    local seed = c * 1000 + f
    workers[#workers + 1] = fiber.create(function()
      local space = conns[c].space.users
      local id = seed
      while true do
        id = (id * 1103515245 + 12345) % 2147483648
        local key = id % rows + 1
        local t0 = clock.monotonic()
        if t0 >= stop_at then break end
        local ok = pcall(function()
          if op == 'select' then space:select({key}) else space:replace(make_user(key)) end
        end)
        local t1 = clock.monotonic()
        if t0 >= warmup_end then
          if ok then done = done + 1; lat[#lat + 1] = t1 - t0 else errors = errors + 1 end
        end
      end
    end)
  end
end
while clock.monotonic() < stop_at + 0.5 do fiber.sleep(0.1) end
table.sort(lat)
local function pct(p) if #lat == 0 then return 0 end return lat[math.max(1, math.ceil(#lat * p))] * 1000 end
print(json.encode({system = 'tarantool', op = op, connections = conns_n, in_flight = conns_n * fibers_n,
                   ops_per_sec = math.floor(done / seconds), p50_ms = pct(0.5), p99_ms = pct(0.99),
                   errors = errors}))
os.exit(0)

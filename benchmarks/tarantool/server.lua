-- A Tarantool 2.6 peer for agentstore's comparisons: one memtx space of 15-field tuples
-- (about a user profile) keyed by an unsigned id, open to guest, on a loopback port.
--   tarantool server.lua PORT WORK_DIR WAL_MODE(none|write|fsync) ROWS
local port, work_dir, wal_mode, rows = arg[1], arg[2], arg[3] or 'fsync', tonumber(arg[4] or 10000)
box.cfg{
  listen = '127.0.0.1:' .. port,
  work_dir = work_dir,
  wal_mode = wal_mode,
  memtx_memory = 512 * 1024 * 1024,
  log = 'tarantool.log',
  background = false,
  readahead = 1024 * 1024,
}
box.once('schema', function()
  local s = box.schema.space.create('users')
  s:create_index('primary', {type = 'tree', parts = {1, 'unsigned'}})
  box.schema.user.grant('guest', 'read,write,execute', 'universe')
end)
-- The same tuple shape bench.lua replaces with: id, then 14 profile-like fields.
function make_user(id)
  return {id, 'user' .. id .. '@example.com', 'Full Name ' .. id, 'https://img.example.com/' .. id,
          'Engineer', 'Platform', 'Example Org', 'user', '{"theme":"dark"}',
          '{"email":true,"in_app":true,"weekly_digest":true}', true, false,
          1700000000000000 + id, 1700000000000000 + id, 1700000000000000}
end
if box.space.users:len() < rows then
  box.begin()
  for id = 1, rows do
    box.space.users:replace(make_user(id))
    if id % 1000 == 0 then box.commit(); box.begin() end
  end
  box.commit()
end
require('log').info('ready')
local f = io.open(work_dir .. '/ready', 'w'); f:write('ok'); f:close()

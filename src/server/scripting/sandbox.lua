-- The environment of rf-server's Lua scripts, built once per interpreter as Redis 7.0 builds
-- its own (script_lua.c, eval.c). This chunk runs with the interpreter's real globals as its
-- environment; scripts only ever see them through read-only proxies, because stock Lua 5.1
-- has no read-only tables (Redis patches its Lua for that).
--
-- `rt` is the engine's private runtime table: Rust sets `rt.host` (the per-run callback that
-- reaches the server) while a script runs, and reads `rt.env` / `rt.run` back.
-- `prim` holds the Rust primitives that need no running script.
local rt, prim = ...

local G = _G
local error, type, select, tostring, tonumber = error, type, select, tostring, tonumber
local setmetatable, getmetatable, rawget, rawset = setmetatable, getmetatable, rawget, rawset
local next, pairs, ipairs, pcall, xpcall = next, pairs, ipairs, pcall, xpcall
local floor, concat = math.floor, table.concat
local error_table = prim.error_table
local OP_SETRESP, OP_SET_REPL, OP_RANDOMSEED = prim.OP_SETRESP, prim.OP_SET_REPL, prim.OP_RANDOMSEED

local READONLY = 'Attempt to modify a readonly table'

-- proxy -> the table it guards
local guarded = setmetatable({}, { __mode = 'k' })

local function deny_write()
  error(READONLY, 2)
end

local function readonly(t)
  local proxy = setmetatable({}, { __index = t, __newindex = deny_write, __metatable = false })
  guarded[proxy] = t
  return proxy
end

-- Lua 5.1's conversion of a number argument to a C int (truncation toward zero).
local function toint(v)
  v = tonumber(v) or 0
  if v >= 0 then return floor(v) end
  return -floor(-v)
end

-- Globals Redis does not offer.
G.print, G.dofile, G.loadfile, G.module, G.require, G.package, G.newproxy = nil, nil, nil, nil, nil, nil, nil

-- ---- the redis library ----------------------------------------------------------------

local redis = {}

local function host_or_fail(what)
  local host = rt.host
  if not host then
    error(error_table(what .. ' can only be called inside a script invocation'))
  end
  return host
end

redis.call, redis.pcall, redis.sha1hex, redis.acl_check_cmd = prim.call, prim.pcall, prim.sha1hex, prim.acl_check_cmd

function redis.setresp(...)
  local host = host_or_fail('redis.setresp')
  if select('#', ...) ~= 1 then error(error_table('redis.setresp() requires one argument.')) end
  local resp = toint((...))
  if resp ~= 2 and resp ~= 3 then error(error_table('RESP version must be 2 or 3.')) end
  host(OP_SETRESP, resp)
end

function redis.set_repl(...)
  local host = host_or_fail('redis.set_repl')
  if select('#', ...) ~= 1 then error(error_table('redis.set_repl() requires two arguments.')) end
  local flags = toint((...))
  if flags < 0 or flags > 3 then
    error(error_table('Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.'))
  end
  host(OP_SET_REPL, flags)
end

function redis.log(...)
  local argc = select('#', ...)
  if argc < 2 then error(error_table('redis.log() requires two arguments or more.')) end
  local level = ...
  if tonumber(level) == nil then error(error_table('First argument must be a number (log level).')) end
  level = toint(level)
  if level < 0 or level > 3 then error(error_table('Invalid debug level.')) end
  local parts = {}
  for i = 2, argc do
    local s = select(i, ...)
    local t = type(s)
    if t == 'string' or t == 'number' then parts[#parts + 1] = tostring(s) end
  end
  prim.log(level, concat(parts, ' '))
end

function redis.error_reply(...)
  local e = ...
  if select('#', ...) ~= 1 or type(e) ~= 'string' then
    return error_table('wrong number or type of arguments')
  end
  if e:sub(1, 1) ~= '-' then e = '-' .. e end
  return error_table(e)
end

function redis.status_reply(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return error_table('wrong number or type of arguments')
  end
  return { ok = s }
end

-- Always on since Redis 7.0 (effects replication is the only mode).
function redis.replicate_commands() return true end
-- The debugger is not offered: no breakpoint is ever hit, redis.debug logs nowhere.
function redis.breakpoint() return false end
function redis.debug() end

redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REDIS_VERSION, redis.REDIS_VERSION_NUM = prim.version, prim.version_num

G.redis = redis

-- ---- math.random as Redis's: its own rand48, same sequence on every platform ----------

G.math.random = prim.random

function G.math.randomseed(seed)
  local host = rt.host
  if not host then error('math.randomseed can only be called inside a script invocation', 2) end
  if tonumber(seed) == nil then
    error("bad argument #1 to 'randomseed' (number expected, got " .. (seed == nil and 'no value' or type(seed)) .. ")", 2)
  end
  host(OP_RANDOMSEED, toint(seed))
end

-- ---- Redis's pcall: an error table gives its message, as before Redis 7 -----------------

local unwrap_error = prim.unwrap_error

local function pcall_result(ok, ...)
  if ok then return true, ... end
  local e = unwrap_error((...))
  if type(e) == 'table' then
    local msg = e.err
    if type(msg) == 'string' or type(msg) == 'number' then return false, msg end
  end
  return false, e
end

function G.pcall(...) return pcall_result(pcall(...)) end

-- ---- read-only tables -------------------------------------------------------------------

local function guarded_or_self(t) return guarded[t] or t end

function G.rawset(t, k, v)
  if guarded[t] then error(READONLY, 0) end
  return rawset(t, k, v)
end

function G.rawget(t, k) return rawget(guarded_or_self(t), k) end

function G.setmetatable(t, mt)
  if guarded[t] then error(READONLY, 0) end
  return setmetatable(t, mt)
end

function G.next(t, k) return next(guarded_or_self(t), k) end

function G.pairs(t)
  local real = guarded[t]
  if real then return next, real, nil end
  return pairs(t)
end

function G.ipairs(t) return ipairs(guarded_or_self(t)) end

for _, name in ipairs({ 'string', 'table', 'math', 'coroutine', 'redis', 'cjson', 'bit', 'cmsgpack', 'struct' }) do
  if type(G[name]) == 'table' then G[name] = readonly(G[name]) end
end
-- ("x"):upper() goes through the guarded string library too.
local string_meta = getmetatable('')
string_meta.__index = G.string
string_meta.__metatable = false

-- The globals scripts see: reading a missing one is an error, writing any is refused.
local env = setmetatable({}, { __index = G, __newindex = deny_write, __metatable = false })
guarded[env] = G
G._G = env
setmetatable(G, {
  __index = function(_, name)
    local t = type(name)
    if t ~= 'string' and t ~= 'number' then
      error('Second argument to luaProtectedTableError must be a string or number', 2)
    end
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end,
})

rt.env = env

-- Runs a compiled script (no arguments) or function (keys, args) under the error handler.
function rt.run(f, keys, args)
  return xpcall(function() return f(keys, args) end, rt.handler)
end

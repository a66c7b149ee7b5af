-- The environment of rf-server's Lua scripts, built once per interpreter as Redis 7.0 builds
-- its own (script_lua.c, eval.c). This chunk runs with the interpreter's real globals as its
-- environment; scripts only ever see them through read-only proxies, because stock Lua 5.1
-- has no read-only tables (Redis patches its Lua for that).
--
-- `rt` is the engine's private runtime table: Rust reads `rt.env` / `rt.run` back.
-- `prim` holds the Rust primitives; `prim.running_host()` is the per-run callback that
-- reaches the server while a script runs (nil otherwise).
local rt, prim = ...

local G = _G
local error, type, select, tostring, tonumber = error, type, select, tostring, tonumber
local setmetatable, getmetatable, rawget, rawset = setmetatable, getmetatable, rawget, rawset
local next, pairs, ipairs, pcall, xpcall = next, pairs, ipairs, pcall, xpcall
local floor, concat = math.floor, table.concat
local error_table = prim.error_table
local running_host = prim.running_host
local unwrap_error = prim.unwrap_error
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
  local host = running_host()
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
  local host = running_host()
  if not host then error('math.randomseed can only be called inside a script invocation', 2) end
  if tonumber(seed) == nil then
    error("bad argument #1 to 'randomseed' (number expected, got " .. (seed == nil and 'no value' or type(seed)) .. ")", 2)
  end
  host(OP_RANDOMSEED, toint(seed))
end

-- ---- Redis's pcall: an error table gives its message, as before Redis 7 -----------------

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

-- What getmetatable shows of a guarded table: nothing for the libraries (as Redis), the
-- globals' metatable read-only (filled in below).
local shown_meta = {}
function G.getmetatable(t)
  if guarded[t] then return shown_meta[t] end
  return getmetatable(t)
end

-- Redis's Lua refuses precompiled chunks (see compile_text in engine.rs).
G.loadstring, G.load = prim.loadstring, prim.load

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
string_meta.__metatable = readonly({ __index = G.string })

local function nonexistent_global(_, name)
  local t = type(name)
  if t ~= 'string' and t ~= 'number' then
    error('Second argument to luaProtectedTableError must be a string or number', 2)
  end
  error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
end

-- The globals scripts see: reading a missing one is an error, writing any is refused.
local env_meta = { __index = G, __newindex = deny_write, __metatable = false }
local env = setmetatable({}, env_meta)
guarded[env] = G
shown_meta[env] = readonly({ __index = nonexistent_global })
G._G = env
setmetatable(G, { __index = nonexistent_global })

rt.env = env

-- ---- FUNCTION LOAD: the library's code sees only redis.register_function, redis.log and
-- the versions (function_lua.c's LIBRARY_API); its functions see the full API when called.

local registered -- the functions of the library being loaded, while it loads

local FLAG_NAMES = { ['no-writes'] = true, ['allow-oom'] = true, ['allow-stale'] = true,
                     ['no-cluster'] = true, ['allow-cross-slot-keys'] = true }

local function fail(msg) error(error_table(msg)) end
local function is_string(v) local t = type(v) return t == 'string' or t == 'number' end

local function read_flags(list)
  local flags, j = {}, 1
  while true do
    local f = list[j]
    if f == nil then break end
    if not is_string(f) then fail('unknown flag given') end
    f = string.lower(tostring(f))
    if not FLAG_NAMES[f] then fail('unknown flag given') end
    flags[#flags + 1] = f
    j = j + 1
  end
  return flags
end

local function register_function(...)
  if not registered then fail('redis.register_function can only be called on FUNCTION LOAD command') end
  local argc = select('#', ...)
  if argc < 1 or argc > 2 then fail('wrong number of arguments to redis.register_function') end
  local name, callback, description, flags
  if argc == 1 then
    local args = ...
    if type(args) ~= 'table' then
      fail('calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).')
    end
    for k, v in next, args do
      if not is_string(k) then fail('named argument key given to redis.register_function is not a string') end
      local key = string.lower(tostring(k))
      if key == 'function_name' then
        if not is_string(v) then fail('function_name argument given to redis.register_function must be a string') end
        name = tostring(v)
      elseif key == 'description' then
        if not is_string(v) then fail('description argument given to redis.register_function must be a string') end
        description = tostring(v)
      elseif key == 'callback' then
        if type(v) ~= 'function' then fail('callback argument given to redis.register_function must be a function') end
        callback = v
      elseif key == 'flags' then
        if type(v) ~= 'table' then fail('flags argument to redis.register_function must be a table representing function flags') end
        flags = read_flags(v)
      else
        fail('unknown argument given to redis.register_function')
      end
    end
    if not name then fail('redis.register_function must get a function name argument') end
    if not callback then fail('redis.register_function must get a callback argument') end
  else
    local n, f = ...
    if not is_string(n) then fail('first argument to redis.register_function must be a string') end
    if type(f) ~= 'function' then fail('second argument to redis.register_function must be a function') end
    name, callback = tostring(n), f
  end
  if not string.find(name, '^[%w_]+$') then
    fail('Library names can only contain letters, numbers, or underscores(_) and must be at least one character long')
  end
  for _, r in ipairs(registered) do
    if r.name == name then fail('Function already exists in the library') end
  end
  registered[#registered + 1] = { name = name, callback = callback, description = description, flags = flags or {} }
end

local load_redis = setmetatable({ register_function = register_function, log = redis.log }, { __index = nonexistent_global })
for _, k in ipairs({ 'LOG_DEBUG', 'LOG_VERBOSE', 'LOG_NOTICE', 'LOG_WARNING', 'REDIS_VERSION', 'REDIS_VERSION_NUM' }) do
  load_redis[k] = redis[k]
end
local load_api = setmetatable({ redis = readonly(load_redis) }, { __index = nonexistent_global })

-- Runs a compiled library; returns true and the functions it registered, or false and the
-- error it raised.
function rt.load_library(chunk)
  registered = {}
  env_meta.__index = load_api
  local ok, err = pcall(chunk)
  env_meta.__index = G
  local functions = registered
  registered = nil
  if ok then return true, functions end
  return false, unwrap_error(err)
end

-- Runs a compiled script (no arguments) or function (keys, args) under the error handler.
-- Lua 5.1's xpcall passes no arguments: they wait in these upvalues (scripts never nest),
-- rather than in a new closure per run, which would be garbage for the collector. Nothing
-- may run after xpcall returns: a killed script's hook raises on every new line.
local run_f, run_keys, run_args
local function run_body()
  local f, keys, args = run_f, run_keys, run_args
  run_f, run_keys, run_args = nil, nil, nil
  return f(keys, args)
end
function rt.run(f, keys, args)
  run_f, run_keys, run_args = f, keys, args
  return xpcall(run_body, rt.handler)
end

"""Lua scripts of the Redis persistence provider; each runs atomically on the server.

Key layout under ``P`` (the provider's prefix):

* ``P:wf:ID`` hash -- the workflow row exactly as ``_rows`` shapes it (a
  missing field is NULL) plus ``imember``, its member in the indexes
* ``P:idem:KEY`` -- the id of the workflow holding an idempotency key
* ``P:idx:all``, ``P:idx:s:STATUS``, ``P:idx:t:TYPE``, ``P:idx:st:STATUS:TYPE``
  -- sorted sets for ``list_workflows``, scored by ``created_at`` in integer
  microseconds; members are ``<insertion counter, 12 digits>:ID`` so equal
  timestamps order by insertion, as in the SQL stores
* ``P:audit:ID``, ``P:logs:ID``, ``P:metrics:ID`` -- lists of JSON rows
* ``P:task:TID`` hash (the task row plus ``qseq``); ``P:tq:queued`` (score:
  enqueue order) and ``P:tq:running`` (score: last heartbeat) sorted sets;
  ``P:wftasks:ID`` the set of a workflow's task ids
* ``P:hb`` sorted set (score: last heartbeat) and ``P:hb:ID`` hashes
* ``P:seq:sync``, ``P:seq:wf``, ``P:seq:task`` -- counters

Python shapes every row (``_rows``, shared with SQLite and PostgreSQL) from a
snapshot it read; the scripts only compare-and-set against that snapshot's
``version`` and move keys. Keys are derived inside the scripts from the
prefix, so on Redis Cluster the prefix must be a hash tag (``{ruvon}``).
"""

from __future__ import annotations

_ENQUEUE_FN = """
local function enqueue(p, tid, wid, fields)
  local key = p .. ':task:' .. tid
  if redis.call('EXISTS', key) == 1 then return end
  local qseq = redis.call('INCR', p .. ':seq:task')
  redis.call('HSET', key, 'qseq', qseq, unpack(fields))
  redis.call('ZADD', p .. ':tq:queued', qseq, tid)
  if wid ~= '' then redis.call('SADD', p .. ':wftasks:' .. wid, tid) end
end
local function take_fields(argv, i)
  local n = tonumber(argv[i])
  local out = {}
  for j = 1, n do out[j] = argv[i + j] end
  return out, i + n + 1
end
"""

# ARGV: prefix, task_id, workflow_id|'', n, field/value pairs...
ENQUEUE = (
    _ENQUEUE_FN
    + """
local fields = take_fields(ARGV, 4)
enqueue(ARGV[1], ARGV[2], ARGV[3], fields)
return 1
"""
)

# ARGV: prefix, clear_heartbeat ('1'/'0'), n, then per transition:
#   id, snapshot version ('' = absent), needs_seq ('1'/'0'), created score, status, type,
#   idempotency key|'', n + row field/value pairs, then three lists (audit, logs, metrics)
#   each n + JSON rows, then n_tasks + (task_id, workflow_id, n + field/value pairs)...
# Returns {'ok'} | {'dup', key, holder} | {'conflict', id, actual version|''}.
COMMIT = (
    _ENQUEUE_FN
    + """
local p, clear_hb = ARGV[1], ARGV[2]
local i = 4
local ts = {}
for k = 1, tonumber(ARGV[3]) do
  local t = {id = ARGV[i], snap = ARGV[i + 1], needs_seq = ARGV[i + 2], score = ARGV[i + 3],
             status = ARGV[i + 4], wtype = ARGV[i + 5], idem = ARGV[i + 6]}
  t.fields, i = take_fields(ARGV, i + 7)
  t.audit, i = take_fields(ARGV, i)
  t.logs, i = take_fields(ARGV, i)
  t.metrics, i = take_fields(ARGV, i)
  t.tasks = {}
  local n_tasks = tonumber(ARGV[i]); i = i + 1
  for j = 1, n_tasks do
    local tid, wid = ARGV[i], ARGV[i + 1]
    local fields
    fields, i = take_fields(ARGV, i + 2)
    t.tasks[j] = {tid, wid, fields}
  end
  ts[k] = t
end
for _, t in ipairs(ts) do
  local cur = redis.call('HGET', p .. ':wf:' .. t.id, 'version')
  if (cur or '') ~= t.snap then return {'conflict', t.id, cur or ''} end
  if t.idem ~= '' then
    local holder = redis.call('GET', p .. ':idem:' .. t.idem)
    if holder and holder ~= t.id then return {'dup', t.idem, holder} end
  end
end
local function index(op, status, wtype, member, score)
  for _, name in ipairs({'all', 's:' .. status, 't:' .. wtype, 'st:' .. status .. ':' .. wtype}) do
    if op == 'ZADD' then redis.call('ZADD', p .. ':idx:' .. name, score, member)
    else redis.call('ZREM', p .. ':idx:' .. name, member) end
  end
end
for _, t in ipairs(ts) do
  local key = p .. ':wf:' .. t.id
  local old = redis.call('HMGET', key, 'status', 'workflow_type', 'idempotency_key', 'imember')
  local member = old[4]
  if member then
    index('ZREM', old[1], old[2], member)
  else
    member = string.format('%012d', redis.call('INCR', p .. ':seq:wf')) .. ':' .. t.id
  end
  redis.call('DEL', key)
  redis.call('HSET', key, 'imember', member, unpack(t.fields))
  if t.needs_seq == '1' then redis.call('HSET', key, 'sync_seq', redis.call('INCR', p .. ':seq:sync')) end
  if old[3] and old[3] ~= t.idem and redis.call('GET', p .. ':idem:' .. old[3]) == t.id then
    redis.call('DEL', p .. ':idem:' .. old[3])
  end
  if t.idem ~= '' then redis.call('SET', p .. ':idem:' .. t.idem, t.id) end
  index('ZADD', t.status, t.wtype, member, t.score)
  for _, kind in ipairs({'audit', 'logs', 'metrics'}) do
    if #t[kind] > 0 then redis.call('RPUSH', p .. ':' .. kind .. ':' .. t.id, unpack(t[kind])) end
  end
  for _, task in ipairs(t.tasks) do enqueue(p, task[1], task[2], task[3]) end
  if clear_hb == '1' then
    redis.call('ZREM', p .. ':hb', t.id)
    redis.call('DEL', p .. ':hb:' .. t.id)
  end
end
return {'ok'}
"""
)

# ARGV: prefix, worker_id, now, now_us. Returns the claimed task hash (flat) or nil.
CLAIM = """
local p = ARGV[1]
local ids = redis.call('ZRANGE', p .. ':tq:queued', 0, 0)
if #ids == 0 then return false end
local tid = ids[1]
local key = p .. ':task:' .. tid
redis.call('ZREM', p .. ':tq:queued', tid)
redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'status', 'RUNNING', 'worker_id', ARGV[2], 'claimed_at', ARGV[3],
  'heartbeat_at', ARGV[3], 'updated_at', ARGV[3])
redis.call('ZADD', p .. ':tq:running', ARGV[4], tid)
return redis.call('HGETALL', key)
"""

# ARGV: prefix, task_id, new status, now, result JSON|'' , error|'', allowed statuses...
# Returns 1 moved, 0 not in an allowed status, -1 no such task.
MOVE_TASK = """
local p, tid = ARGV[1], ARGV[2]
local key = p .. ':task:' .. tid
local cur = redis.call('HGET', key, 'status')
if not cur then return -1 end
local allowed = false
for j = 7, #ARGV do if ARGV[j] == cur then allowed = true end end
if not allowed then return 0 end
redis.call('HSET', key, 'status', ARGV[3], 'updated_at', ARGV[4])
if ARGV[3] ~= 'CANCELLED' then
  for j, field in ipairs({'result', 'error'}) do
    if ARGV[4 + j] ~= '' then redis.call('HSET', key, field, ARGV[4 + j]) else redis.call('HDEL', key, field) end
  end
end
redis.call('ZREM', p .. ':tq:queued', tid)
redis.call('ZREM', p .. ':tq:running', tid)
return 1
"""

# ARGV: prefix, cutoff_us, now, error. RUNNING tasks whose heartbeat is older than the
# cutoff: out of attempts -> FAILED, else back to QUEUED. Returns {failed ids, requeued ids}.
REQUEUE_STALE = """
local p, now = ARGV[1], ARGV[3]
local failed, requeued = {}, {}
for _, tid in ipairs(redis.call('ZRANGEBYSCORE', p .. ':tq:running', '-inf', '(' .. ARGV[2])) do
  local key = p .. ':task:' .. tid
  local t = redis.call('HMGET', key, 'attempts', 'max_attempts', 'qseq')
  redis.call('ZREM', p .. ':tq:running', tid)
  if tonumber(t[1]) >= tonumber(t[2]) then
    redis.call('HSET', key, 'status', 'FAILED', 'error', ARGV[4], 'updated_at', now)
    failed[#failed + 1] = tid
  else
    redis.call('HSET', key, 'status', 'QUEUED', 'updated_at', now)
    redis.call('HDEL', key, 'worker_id')
    redis.call('ZADD', p .. ':tq:queued', t[3], tid)
    requeued[#requeued + 1] = tid
  end
end
return {failed, requeued}
"""

# ARGV: prefix, workflow_id, worker_id, now, now_us, n + heartbeat field/value pairs.
# Upserts the heartbeat and keeps that worker's running tasks of the workflow alive.
HEARTBEAT = (
    _ENQUEUE_FN
    + """
local p, wid, worker, now, now_us = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local fields = take_fields(ARGV, 6)
redis.call('DEL', p .. ':hb:' .. wid)
redis.call('HSET', p .. ':hb:' .. wid, unpack(fields))
redis.call('ZADD', p .. ':hb', now_us, wid)
for _, tid in ipairs(redis.call('SMEMBERS', p .. ':wftasks:' .. wid)) do
  local t = redis.call('HMGET', p .. ':task:' .. tid, 'status', 'worker_id')
  if t[1] == 'RUNNING' and t[2] == worker then
    redis.call('HSET', p .. ':task:' .. tid, 'heartbeat_at', now)
    redis.call('ZADD', p .. ':tq:running', now_us, tid)
  end
end
return 1
"""
)

"""The Lua scripts that hold the cluster-wide limits in Redis, each one atomic and one round trip.

Times are Redis's own clock (``TIME``), in microseconds, so workers on hosts whose clocks differ
agree. Numbers go back to Redis through ``%.0f`` (Lua's default ``%.14g`` would round a timestamp
in microseconds).

Keys of one limit (agent and key value), all expiring when idle:

- ``leases``: sorted set, holder (``run_id:step_id``) -> when its lease expires. Concurrency is its
  size once the expired leases are dropped, so a dead worker's permits come back by themselves.
- ``waiting`` / ``wait_exp``: the steps that were refused, in the order they are served (higher
  priority first, then first refused first: score ``(9 - priority) * 1e16 + first refused``) and
  by when they stop counting (a waiter that never comes back stops blocking lower priorities).
  A waiting step of a higher priority blocks a lower one; among equals, whoever comes back when a
  permit is free takes it (no slot idles for a late waiter), and each is told to come back at its
  own place in the line (no herd coming back at once).
- ``tat``: GCRA's theoretical arrival time; a try may start from ``tat - interval`` (one interval
  of tolerance, so a step put back and arriving a little late does not lose its slot for good).
- ``log``: the grants of the last period (sliding log), the hard cap: never more than ``count``
  grants within any one period (``"20/s"``: any second), whatever the tolerance above allows.
- ``ctl``: ``hold_us`` (the mean time a permit is held, to tell a refused step when to come back),
  and the overrides other code sets: ``rate_count`` + ``rate_period_us`` (a rate), ``paused_until``.
"""

from __future__ import annotations

_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function n(x) return string.format('%.0f', x) end
"""

#: KEYS: leases, waiting, wait_exp, tat, ctl, index, log.
#: ARGV: holder, priority, concurrency (0: none), lease_us, rate count (0: none), rate period_us,
#: grace_us, idle_us, index member, min_wait_us.
#: Returns {granted 0/1, wait_us, now_us, leases held, waiting ahead}.
ACQUIRE = (
    _COMMON
    + """
local holder, prio = ARGV[1], tonumber(ARGV[2])
local conc, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
local count, period = tonumber(ARGV[5]), tonumber(ARGV[6])
local grace, idle, minwait = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[10])
local ctl = redis.call('HMGET', KEYS[5], 'rate_count', 'rate_period_us', 'paused_until', 'hold_us')
if ctl[1] and ctl[2] then count, period = tonumber(ctl[1]), tonumber(ctl[2]) end
local paused = tonumber(ctl[3] or '0') or 0
local hold = tonumber(ctl[4] or '0') or 0
local interval = 0
if count > 0 then interval = period / count end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', n(now))
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', n(now), 'LIMIT', 0, 500)
if #stale > 0 then
  redis.call('ZREM', KEYS[2], unpack(stale))
  redis.call('ZREM', KEYS[3], unpack(stale))
end
local keep = math.max(idle, paused - now + idle)
local function touch(tat)
  local ms = math.ceil(keep / 1000)
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ms) end
  redis.call('PEXPIRE', KEYS[5], ms)
  if tat then redis.call('SET', KEYS[4], n(tat), 'PX', math.ceil(math.max(keep, tat - now) / 1000)) end
  redis.call('ZADD', KEYS[6], n(now), ARGV[9])
end
if conc > 0 and redis.call('ZSCORE', KEYS[1], holder) then
  redis.call('ZADD', KEYS[1], n(now + lease), holder)
  touch(nil)
  return {1, 0, n(now), redis.call('ZCARD', KEYS[1]), 0}
end
local wait = 0
if paused > now then wait = paused - now end
local band = (9 - prio) * 1e16
local place = redis.call('ZSCORE', KEYS[2], holder)
if not place then place = band + now end
local higher = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. n(band))
local ahead = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. n(place))
local held = 0
if conc > 0 then
  held = redis.call('ZCARD', KEYS[1])
  if held + higher >= conc then
    local h = hold
    if h <= 0 then h = minwait * 4 end
    local frees = now + minwait
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    if first[2] then frees = math.max(frees, tonumber(first[2]) - lease + h) end
    local rounds = (held + ahead - conc) / conc
    wait = math.max(wait, frees - now + rounds * h)
  end
end
local tat = now
if interval > 0 then
  -- GCRA, one interval of tolerance: a step that comes back late does not lose the time
  tat = math.max(tonumber(redis.call('GET', KEYS[4]) or '0') or 0, now)
  local allow = tat - interval + higher * interval
  if allow > now then wait = math.max(wait, allow - now + (ahead - higher) * interval) end
  -- and the hard cap: never more than count grants within any period (a sliding log)
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', n(now - period))
  local logged = redis.call('ZCARD', KEYS[7])
  if logged + higher >= count then
    local nth = logged + higher - count
    local oldest = redis.call('ZRANGE', KEYS[7], nth, nth, 'WITHSCORES')
    local frees = now + minwait
    if oldest[2] then frees = tonumber(oldest[2]) + period + 1 end
    wait = math.max(wait, frees - now + (ahead - higher) * interval)
  end
end
if wait > 0 then
  redis.call('ZADD', KEYS[2], 'NX', n(place), holder)
  redis.call('ZADD', KEYS[3], n(now + wait + grace), holder)
  touch(nil)
  return {0, n(wait), n(now), held, ahead}
end
if conc > 0 then redis.call('ZADD', KEYS[1], n(now + lease), holder) end
redis.call('ZREM', KEYS[2], holder)
redis.call('ZREM', KEYS[3], holder)
if interval > 0 then
  redis.call('ZADD', KEYS[7], n(now), holder .. '@' .. n(now))
  redis.call('PEXPIRE', KEYS[7], math.ceil(period / 1000) + 1000)
  touch(tat + interval)
else
  touch(nil)
end
return {1, 0, n(now), held + 1, ahead}
"""
)

#: KEYS: leases, ctl. ARGV: holder, lease_us. Drops the lease; folds how long it was held into
#: ``hold_us`` (a moving mean). Returns 1 when the holder had a lease.
RELEASE = (
    _COMMON
    + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
local held = now - (tonumber(score) - tonumber(ARGV[2]))
if held > 0 then
  local h = tonumber(redis.call('HGET', KEYS[2], 'hold_us') or '0') or 0
  if h <= 0 then h = held else h = h * 0.8 + held * 0.2 end
  redis.call('HSET', KEYS[2], 'hold_us', n(h))
end
return 1
"""
)

#: KEYS: leases. ARGV: lease_us, holder... Pushes the holders' leases ``lease_us`` from now (only
#: those still held). Returns how many were renewed.
RENEW = (
    _COMMON
    + """
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', n(now + tonumber(ARGV[1])), ARGV[i])
end
return renewed
"""
)

"""The Lua scripts: every change to shared state is one script, so one atomic round trip.

Times are milliseconds. ``ARGV[1]`` is the caller's clock (a FakeClock in tests) or ``''``
for the server's own ``TIME``, which every host agrees on. ``ARGV[2]`` is the breaker's
settings as JSON. Keys of one breaker share a hash tag (``stalwart:{ns:name}:...``), so a
Redis Cluster keeps them in one slot, as a script needs.

The breaker script mirrors ``BreakerCore`` (``stalwart/_breaker.py``): the same states,
reasons and rules, so a shared breaker behaves as a local one fed every process's calls.
"""

from __future__ import annotations

__all__ = ("BREAKER", "BUDGET", "GCRA")

_NOW = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
"""

BREAKER = (
    _NOW
    + """
local cfg = cjson.decode(ARGV[2])
local offered_gen, op = ARGV[3], ARGV[4]
local K, P, W = KEYS[1], KEYS[2], KEYS[3]
local s = {}
local raw = redis.call('HGETALL', K)
for i = 1, #raw, 2 do s[raw[i]] = raw[i + 1] end
local fresh = s.st == nil
local state = s.st or 'closed'
local epoch = tonumber(s.ep or '1')
local gen = s.gen or offered_gen
local failures = tonumber(s.fc or '0')
local successes = tonumber(s.sc or '0')
local open_until = tonumber(s.ou or '0')
local opened_at = tonumber(s.oa or '-1')
local recovery = tonumber(s.rt or cfg.rt)
local failed = tonumber(s.fr or '0')
local seq = tonumber(s.seq or '0')
local why = s.rs or ''  -- the reason for the current state
local wc, wf, ws = tonumber(s.wc or '0'), tonumber(s.wf or '0'), tonumber(s.ws or '0')
local moves, granted, changed = {}, 0, false

local function clear_period()
  failures, successes, wc, wf, ws = 0, 0, 0, 0, 0
  redis.call('DEL', P, W)
end
local function move(new, reason, retry_in)
  moves[#moves + 1] = {state, new, reason, retry_in or -1}
  state, epoch, changed, why = new, epoch + 1, true, reason
end
local function open(reason, retry_after)
  local d = recovery
  if retry_after and retry_after > d then d = retry_after end
  open_until, opened_at = now + d, now
  clear_period()
  move('open', reason, d)
end
local function reopen(reason, retry_after)
  failed = failed + 1
  recovery = math.min(recovery * cfg.rb, cfg.mr)
  open(reason, retry_after)
end
local function close(reason)
  clear_period()
  failed, recovery, opened_at = 0, cfg.rt, -1
  move('closed', reason)
end
-- Transitions that time alone causes, as BreakerCore.poll.
local function advance()
  if state == 'open' and now >= open_until then move('half_open', 'recovery_timeout_elapsed') end
  if state == 'half_open' then
    local expired = redis.call('ZRANGEBYSCORE', P, '-inf', now, 'LIMIT', 0, 1)
    if #expired > 0 then reopen('probe_lease_expired') end
  end
end
-- The rate window: a count window as a list of batches (at least cfg.wn calls are kept,
-- at most one batch more), or a time window as 10 slices of cfg.wd / 10 ms in a hash.
local function window_add(c, f, sl)
  if cfg.wn > 0 then
    redis.call('RPUSH', W, c .. ' ' .. f .. ' ' .. sl)
    wc, wf, ws = wc + c, wf + f, ws + sl
    while true do
      local head = redis.call('LINDEX', W, 0)
      if not head then break end
      local hc, hf, hs = string.match(head, '(%d+) (%d+) (%d+)')
      hc = tonumber(hc)
      if wc - hc < cfg.wn then break end
      redis.call('LPOP', W)
      wc, wf, ws = wc - hc, wf - tonumber(hf), ws - tonumber(hs)
    end
  else
    local slot = math.floor(now / (cfg.wd / 10))
    redis.call('HINCRBY', W, slot .. ':c', c)
    redis.call('HINCRBY', W, slot .. ':f', f)
    redis.call('HINCRBY', W, slot .. ':s', sl)
  end
end
local function window_totals()
  if cfg.wn > 0 then return wc, wf, ws end
  local current = math.floor(now / (cfg.wd / 10))
  local totals = {c = 0, f = 0, s = 0}
  local slices = redis.call('HGETALL', W)
  for i = 1, #slices, 2 do
    local slot, kind = string.match(slices[i], '(%-?%d+):(%a)')
    if tonumber(slot) <= current - 10 then
      redis.call('HDEL', W, slices[i])
    else
      totals[kind] = totals[kind] + tonumber(slices[i + 1])
    end
  end
  return totals.c, totals.f, totals.s
end
local function judge()
  local c, f, sl = window_totals()
  if c < cfg.mc or c == 0 then return end
  if cfg.fr >= 0 and f / c >= cfg.fr then
    open('failure_rate')
  elseif cfg.sd == 1 and sl / c >= cfg.sr then
    open('slow_call_rate')
  end
end
-- A server-given pause: every caller stays away at least that long (BreakerCore.on_failure).
local function pause(ra, held)
  if state == 'half_open' then
    if held then reopen('retry_after', ra) else open('retry_after', ra) end
  elseif state == 'closed' then
    open('retry_after', ra)
  elseif state == 'open' then
    open_until = math.max(open_until, now + ra)
  end
end

advance()
if op == 'outcomes' then
  -- A batch of closed-period outcomes from one process, all admitted in epoch ARGV[5].
  local batch_epoch, calls = tonumber(ARGV[5]), tonumber(ARGV[6])
  local fails, slow = tonumber(ARGV[7]), tonumber(ARGV[8])
  local trailing, had_success, ra = tonumber(ARGV[9]), ARGV[10] == '1', tonumber(ARGV[11])
  changed = true
  if ra >= 0 then
    pause(ra, false)
  elseif state == 'closed' and batch_epoch == epoch then
    if had_success then failures = trailing else failures = failures + trailing end
    local windowed = cfg.wn > 0 or cfg.wd > 0
    if windowed then window_add(calls, fails, slow) end
    if cfg.m == 'c' and failures >= cfg.th then
      open('failure_threshold')
    elseif windowed then
      judge()
    end
  end
elseif op == 'probe' then
  if state == 'half_open' and redis.call('ZCARD', P) < cfg.hm then
    seq = seq + 1
    granted = seq
    redis.call('ZADD', P, now + cfg.pl, seq)
    changed = true
  end
elseif op == 'probe_done' then
  -- ARGV[5]: the probe's id; ARGV[6]: s(uccess), slow, f(ailure) or i(gnored).
  local held = redis.call('ZREM', P, ARGV[5]) == 1
  local outcome, ra = ARGV[6], tonumber(ARGV[7])
  changed = true
  if ra >= 0 then
    pause(ra, held)
  elseif held and state == 'half_open' then
    if outcome == 's' then
      successes = successes + 1
      if successes >= cfg.st then close('probes_succeeded') end
    elseif outcome == 'slow' then
      reopen('slow_probe')
    elseif outcome == 'f' then
      reopen('probe_failed')
    end
  end
elseif op == 'reset' then
  close('reset')
elseif op == 'force_open' then
  opened_at = now
  clear_period()
  move('forced_open', 'forced_open')
elseif op == 'disable' then
  clear_period()
  opened_at = -1
  move('disabled', 'disabled')
end

local probes = redis.call('ZCARD', P)
if changed or not fresh then
  redis.call('HSET', K, 'st', state, 'ep', epoch, 'gen', gen, 'fc', failures, 'sc', successes,
    'ou', open_until, 'oa', opened_at, 'rt', recovery, 'fr', failed, 'seq', seq,
    'wc', wc, 'wf', wf, 'ws', ws, 'rs', why)
  redis.call('PEXPIRE', K, cfg.ttl)
  if probes > 0 then redis.call('PEXPIRE', P, cfg.ttl) end
  if redis.call('EXISTS', W) == 1 then redis.call('PEXPIRE', W, cfg.ttl) end
else
  gen = ''  -- nothing stored yet: the defaults, which any later record supersedes
end
local out = cjson.encode({n = cfg.n, st = state, ep = epoch, gen = gen, fc = failures,
  sc = successes, ou = open_until, oa = opened_at, rt = recovery, fr = failed, now = now,
  hp = probes, g = granted, mv = moves, rs = why})
if #moves > 0 or op == 'probe_done' then redis.call('PUBLISH', cfg.ch, out) end
return out
"""
)
"""KEYS: state hash, probe leases (zset), window. ARGV: now, settings, generation, op, ..."""

GCRA = (
    _NOW
    + """
local interval, tolerance = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, within, batch = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local take = cost
if batch > cost then
  -- Up to `batch` tokens if at least `cost` are free now: the caller keeps the rest.
  local free = math.floor((tolerance - (tat - now)) / interval + 1e-9)
  if free >= cost then take = math.min(batch, free) end
end
local new = tat + take * interval
local wait = new - tolerance - now
if take > cost and wait > 0 then wait = 0 end
if cost > 0 and wait <= within then
  redis.call('SET', KEYS[1], string.format('%.3f', new), 'PX', math.ceil(new - now) + 1)
else
  take = 0
end
return string.format('%.6f', wait) .. ' ' .. take
"""
)
"""The generic cell rate algorithm on one timestamp (as ``stalwart._ratelimit.GCRA``).
KEYS: the timestamp. ARGV: now, interval ms, tolerance ms, cost, the wait allowed (ms),
batch (tokens to take at once when free). Returns ``"wait_ms taken"``: the tokens are
taken when the wait is at most the wait allowed. Cost 0 reads: the wait is then ``-tokens
free * interval``."""

BUDGET = (
    _NOW
    + """
local width, percent, reserve = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local deposit, withdraw = tonumber(ARGV[5]), ARGV[6] == '1'
local current = math.floor(now / width)
if deposit > 0 then redis.call('HINCRBY', KEYS[1], current .. ':c', deposit) end
local calls, retries = 0, 0
local slices = redis.call('HGETALL', KEYS[1])
for i = 1, #slices, 2 do
  local slot, kind = string.match(slices[i], '(%-?%d+):(%a)')
  if tonumber(slot) <= current - 10 then
    redis.call('HDEL', KEYS[1], slices[i])
  elseif kind == 'c' then
    calls = calls + tonumber(slices[i + 1])
  else
    retries = retries + tonumber(slices[i + 1])
  end
end
local balance = reserve + percent * calls - retries
local granted = 0
if withdraw and balance >= 1 - 1e-9 then
  redis.call('HINCRBY', KEYS[1], current .. ':r', 1)
  granted, balance = 1, balance - 1
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], math.ceil(width * 20)) end
return granted .. ' ' .. string.format('%.6f', balance)
"""
)
"""Finagle's retry budget over 10 slices (as ``stalwart._retry.BudgetCore``). KEYS: the
slices hash. ARGV: now, slice width ms, percent, reserve, calls to deposit, withdraw (1/0).
Returns ``"granted balance"``."""

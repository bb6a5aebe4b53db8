-- obs-ratelimit approximate sliding window: two fixed windows, weighted. O(1) memory per key.
-- One call decides one key or a batch of keys (concurrent callers coalesced by the client; a
-- single decision is a batch of one). Decisions run in order, so a key that appears twice sees
-- the first decision's count: the same answers as one call per key in this order.
-- KEYS[1..n]  hashes {w = current window index, c = its count, p = previous window's count},
--             hash-tagged `{prefix:key}` (the client batches only on a single node)
-- ARGV[1] limit    ARGV[2] window (µs)    then per key i: ARGV[i+2] cost
-- Returns {now_us, then per key: allowed, remaining, retry_us, blocked_us, reset_us}.
-- The arithmetic (and its floating-point operation order) mirrors src/algo.rs.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local w = math.floor(now / window)
local elapsed = now - w * window
local rem = window - elapsed
local weight = (window - elapsed) / window
local ttl_ms = math.ceil((2 * window - elapsed) / 1000)
local out = {now}
local o = 1

local p, c

local function estimate(pp, cc)
  return pp * weight + cc
end

local function wait(k)
  if estimate(p, c) + k <= limit then return 0 end
  if c + k <= limit then
    local x = rem - (limit - k - c) * window / p
    x = math.max(math.ceil(x), 0) + 1
    return math.min(x, rem)
  else
    local lk = limit - k
    if lk < 0 then lk = 0 end
    local e = window - lk * window / c
    e = math.max(math.ceil(e), 0) + 1
    return rem + math.min(e, window)
  end
end

for k = 1, #KEYS do
  local key = KEYS[k]
  local cost = tonumber(ARGV[k + 2])
  local st = redis.call('HMGET', key, 'w', 'c', 'p')
  local sw = tonumber(st[1])
  c = tonumber(st[2]) or 0
  p = tonumber(st[3]) or 0
  if sw == nil then
    c = 0; p = 0
  elseif sw == w then
    -- same window
  elseif sw + 1 == w then
    p = c; c = 0
  else
    p = 0; c = 0
  end

  local allowed = 0
  if cost <= limit and estimate(p, c) + cost <= limit then
    allowed = 1
    if cost > 0 then
      c = c + cost
      redis.call('HSET', key, 'w', w, 'c', c, 'p', p)
      -- Every key carries a TTL: the counts matter until the end of the next window.
      redis.call('PEXPIRE', key, ttl_ms)
    end
  end

  local est = estimate(p, c)
  local retry = 0
  if allowed == 0 then
    if cost > limit then retry = window else retry = wait(cost) end
  end
  local blocked
  if limit == 0 then blocked = window else blocked = wait(1) end
  local reset = 0
  if c > 0 then
    reset = 2 * window - elapsed
  elseif p > 0 then
    reset = window - elapsed
  end
  local remaining = math.floor(limit - est)
  if remaining < 0 then remaining = 0 end
  out[o + 1] = allowed
  out[o + 2] = remaining
  out[o + 3] = retry
  out[o + 4] = blocked
  out[o + 5] = reset
  o = o + 5
end
return out

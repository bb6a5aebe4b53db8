-- obs-ratelimit exact sliding log: one sorted set per key of admissions scored by time in µs.
-- One call decides one key or a batch of keys (concurrent callers coalesced by the client; a
-- single decision is a batch of one). Decisions run in order, so a key that appears twice sees
-- the first decision's admission: the same answers as one call per key in this order.
-- KEYS[1..n]  the logs, hash-tagged `{prefix:key}` (the client batches only on a single node)
-- ARGV[1] limit    ARGV[2] window (µs)    then per key i: ARGV[2i+1] cost, ARGV[2i+2] nonce
-- Returns {now_us, then per key: allowed, remaining, retry_us, blocked_us, reset_us}.
-- Time comes only from the server (`TIME`; effects replication, Redis >= 5).
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local horizon = now - window
local ttl_ms = math.ceil(window / 1000)
local out = {now}
local o = 1

for k = 1, #KEYS do
  local key = KEYS[k]
  local cost = tonumber(ARGV[2 * k + 1])
  local nonce = ARGV[2 * k + 2]

  -- An admission at `s` counts while s > now - window; a missing key has nothing to trim.
  local count = redis.call('ZCARD', key)
  if count > 0 then
    count = count - redis.call('ZREMRANGEBYSCORE', key, '-inf', horizon)
  end

  local allowed = 0
  if cost <= limit and count + cost <= limit then
    allowed = 1
    if cost == 1 then
      redis.call('ZADD', key, now, nonce .. ':1')
      count = count + 1
    elseif cost > 0 then
      local i = 1
      while i <= cost do
        local args = {}
        local j = 0
        while i <= cost and j < 1000 do
          args[2 * j + 1] = now
          args[2 * j + 2] = nonce .. ':' .. i
          i = i + 1
          j = j + 1
        end
        redis.call('ZADD', key, unpack(args))
      end
      count = count + cost
    end
  end

  local retry = 0
  if allowed == 0 then
    if cost > limit then
      retry = window
    else
      local e = redis.call('ZRANGE', key, count + cost - limit - 1, count + cost - limit - 1, 'WITHSCORES')
      retry = tonumber(e[2]) + window - now
    end
  end

  local blocked = 0
  if limit == 0 then
    blocked = window
  elseif count >= limit then
    local e = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    blocked = tonumber(e[2]) + window - now
  end

  -- Every key carries a TTL: it lives exactly as long as its newest admission matters.
  local reset = 0
  if allowed == 1 and cost > 0 then
    reset = window
    redis.call('PEXPIRE', key, ttl_ms)
  elseif count > 0 then
    local e = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    reset = tonumber(e[2]) + window - now
  end

  local remaining = limit - count
  if remaining < 0 then remaining = 0 end
  out[o + 1] = allowed
  out[o + 2] = remaining
  out[o + 3] = retry
  out[o + 4] = blocked
  out[o + 5] = reset
  o = o + 5
end
return out

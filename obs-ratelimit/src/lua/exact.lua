-- obs-ratelimit exact sliding log. One key (a sorted set of admissions scored by time in µs).
-- KEYS[1]  the log, hash-tagged `{prefix:key}`
-- ARGV[1]  limit        ARGV[2] window (µs)    ARGV[3] cost    ARGV[4] unique nonce for members
-- Returns {allowed, remaining, retry_us, blocked_us, reset_us, now_us}.
-- Time comes only from the server (`TIME`; effects replication, Redis >= 5).
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local nonce = ARGV[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- An admission at `s` counts while s > now - window. A missing key (the common case for
-- per-client keys) has nothing to trim: one cheap ZCARD instead of a trim and a count.
local count = redis.call('ZCARD', key)
if count > 0 then
  count = count - redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
end

local function free_at(idx)
  local e = redis.call('ZRANGE', key, idx, idx, 'WITHSCORES')
  return tonumber(e[2]) + window
end

local allowed = 0
if cost <= limit and count + cost <= limit then
  allowed = 1
  if cost > 0 then
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
    retry = free_at(count + cost - limit - 1) - now
  end
end

local blocked = 0
if limit == 0 then
  blocked = window
elseif count >= limit then
  blocked = free_at(count - limit) - now
end

-- Every key carries a TTL: it lives exactly as long as its newest admission matters.
local reset = 0
if allowed == 1 and cost > 0 then
  -- The newest admission is this one.
  reset = window
  redis.call('PEXPIRE', key, math.ceil(reset / 1000))
elseif count > 0 then
  -- Nothing added: the newest admission, and so the TTL it set, are unchanged.
  local e = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  reset = tonumber(e[2]) + window - now
end

local remaining = limit - count
if remaining < 0 then remaining = 0 end
return {allowed, remaining, retry, blocked, reset, now}

-- obs-ratelimit refund: take back an admission (used when a stacked limiter denies afterwards).
-- KEYS[1] the limiter key   ARGV[1] mode ('exact' | 'approx')   ARGV[2] cost
-- ARGV[3] nonce (exact) | window index of the admission (approx)
local key = KEYS[1]
local cost = tonumber(ARGV[2])
if ARGV[1] == 'exact' then
  for i = 1, cost do
    redis.call('ZREM', key, ARGV[3] .. ':' .. i)
  end
  return 1
end
local aw = tonumber(ARGV[3])
local st = redis.call('HMGET', key, 'w', 'c', 'p')
local sw = tonumber(st[1])
if sw == nil then return 0 end
if sw == aw then
  local c = math.max((tonumber(st[2]) or 0) - cost, 0)
  redis.call('HSET', key, 'c', c)
elseif sw == aw + 1 then
  local p = math.max((tonumber(st[3]) or 0) - cost, 0)
  redis.call('HSET', key, 'p', p)
end
return 1

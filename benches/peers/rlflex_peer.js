// Node `rate-limiter-flexible` (npm) RateLimiterRedis on ioredis: decisions/s at one concurrency.
//
// Usage: node rlflex_peer.js REDIS_URL CONCURRENCY SECONDS
// Prints: `rate-limiter-flexible c=N decisions_per_sec=X`. Every decision admitted (1000 points
// per 60 s on random keys among 1M), like the obs run. Modules are resolved from NODE_PATH
// (run.sh installs them under target/ratelimit-peers/node).
'use strict';
const { RateLimiterRedis } = require('rate-limiter-flexible');
const Redis = require('ioredis');

async function main() {
  const [url, conc, secs] = process.argv.slice(2);
  const concurrency = Number(conc);
  const client = new Redis(url, { enableOfflineQueue: true, maxRetriesPerRequest: 1 });
  const limiter = new RateLimiterRedis({
    storeClient: client,
    points: 1000,
    duration: 60,
    keyPrefix: `rlflex-bench-${process.pid}`,
  });
  const until = Date.now() + Number(secs) * 1000;
  let done = 0;
  const start = process.hrtime.bigint();
  async function worker() {
    while (Date.now() < until) {
      await limiter.consume(String(Math.floor(Math.random() * 1_000_000)));
      done += 1;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`rate-limiter-flexible c=${concurrency} decisions_per_sec=${(done / elapsed).toFixed(0)}`);
  client.disconnect();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

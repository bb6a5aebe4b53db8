"""Python `limits` (PyPI) moving-window limiter on Redis: decisions/s at one concurrency.

Usage: python limits_peer.py REDIS_URL CONCURRENCY SECONDS
Prints: `limits c=N decisions_per_sec=X`. asyncio + the library's default async Redis client
(coredis); every decision admitted (1000/minute on random keys among 1M), like the obs run.
"""
import asyncio
import random
import sys
import time

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.aio.strategies import MovingWindowRateLimiter


async def main(url: str, concurrency: int, seconds: float) -> None:
    storage = storage_from_string("async+" + url)
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerMinute(1000)
    prefix = f"limits-bench-{random.getrandbits(32)}"
    done = 0
    until = time.monotonic() + seconds

    async def worker(seed: int) -> None:
        nonlocal done
        rng = random.Random(seed)
        while time.monotonic() < until:
            await limiter.hit(item, prefix, str(rng.randrange(1_000_000)))
            done += 1

    start = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    print(f"limits c={concurrency} decisions_per_sec={done / (time.monotonic() - start):.0f}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))

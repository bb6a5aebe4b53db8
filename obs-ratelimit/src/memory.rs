//! The in-memory backend: the same algorithms as the Redis scripts, in process.
//!
//! Keys live in a fixed number of shards, each a `parking_lot::Mutex<HashMap>` with the
//! `foldhash` hasher, so concurrent callers on different keys rarely contend. Entries that no
//! longer matter (everything in them left the window) are swept from a shard at most once per
//! window and once per `len` operations on it (amortised O(1)), so memory follows the number of *active* keys.

use std::collections::HashMap;
use std::hash::BuildHasher;

use parking_lot::Mutex;

use crate::algo::{ExactLog, Outcome, TwoWindows};
use crate::Mode;

const SHARDS: usize = 64;
const MIN_SWEEP_OPS: usize = 64;

#[derive(Debug)]
enum State {
    Exact(ExactLog),
    Approx(TwoWindows),
}

impl State {
    fn expires_at(&self, window: u64) -> u64 {
        match self {
            State::Exact(log) => log.expires_at(window),
            State::Approx(tw) => tw.expires_at(window),
        }
    }
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Box<str>, State, foldhash::fast::RandomState>,
    ops: u32,
    next_sweep: u64,
}

/// Keyed window state in process memory.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::RandomState,
    mode: Mode,
    limit: u64,
    window_us: u64,
}

impl MemoryStore {
    pub(crate) fn new(mode: Mode, limit: u32, window_us: u64) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: foldhash::fast::RandomState::default(),
            mode,
            limit: u64::from(limit),
            window_us,
        }
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        let h = self.hasher.hash_one(key);
        &self.shards[(h as usize) % SHARDS]
    }

    pub(crate) fn decide(&self, key: &str, cost: u32, now: u64) -> Outcome {
        let mut shard = self.shard(key).lock();
        shard.ops += 1;
        // Amortised O(1): a sweep costs O(len) and runs at most once per `len` operations and
        // once per window on this shard.
        if shard.ops as usize >= shard.map.len().max(MIN_SWEEP_OPS) && now >= shard.next_sweep {
            shard.ops = 0;
            let window = self.window_us;
            shard.next_sweep = now + window;
            shard.map.retain(|_, s| s.expires_at(window) > now);
        }
        let state = match shard.map.get_mut(key) {
            Some(s) => s,
            None => shard
                .map
                .entry(key.into())
                .or_insert_with(|| match self.mode {
                    Mode::Exact => State::Exact(ExactLog::default()),
                    Mode::Approximate => State::Approx(TwoWindows::default()),
                }),
        };
        match state {
            State::Exact(log) => log.decide(now, self.window_us, self.limit, cost),
            State::Approx(tw) => tw.decide(now, self.window_us, self.limit, cost),
        }
    }

    pub(crate) fn refund(&self, key: &str, at: u64, cost: u32) {
        let mut shard = self.shard(key).lock();
        match shard.map.get_mut(key) {
            Some(State::Exact(log)) => log.refund(at, cost),
            Some(State::Approx(tw)) => tw.refund(at, self.window_us, cost),
            None => {}
        }
    }

    /// Number of keys currently held (including not yet swept idle ones).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }
}

//! The local deny cache: a key known to be exhausted until `T` is answered in process until `T`.
//!
//! Entries are written only when the backend reported that not even a cost of 1 fits before
//! `T` (`blocked_for`), which includes the admission that used the last unit of budget; nothing
//! but time (or a refund by this process) frees budget in a sliding window, so a cached "no" is
//! never wrong for this limiter. Sharded like the memory backend and swept the same way.

use std::collections::HashMap;
use std::hash::BuildHasher;

use parking_lot::Mutex;

const SHARDS: usize = 64;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Denied {
    /// Answer locally until then: the decision's start + `blocked` (never later than the
    /// backend would change its answer).
    pub(crate) until_us: u64,
    /// Reported `retry_after` target: the decision's end + `blocked` (never earlier than the
    /// backend will admit, so a client waiting that long gets in).
    pub(crate) retry_at_us: u64,
    pub(crate) reset_at_us: u64,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Box<str>, Denied, foldhash::fast::RandomState>,
    inserts: u32,
}

#[derive(Debug)]
pub(crate) struct DenyCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::RandomState,
}

impl DenyCache {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// The entry for `key` if it still denies at `now`.
    pub(crate) fn get(&self, key: &str, now: u64) -> Option<Denied> {
        let shard = self.shard(key).lock();
        match shard.map.get(key) {
            Some(d) if d.until_us > now => Some(*d),
            _ => None,
        }
    }

    pub(crate) fn insert(&self, key: &str, denied: Denied, now: u64) {
        let mut shard = self.shard(key).lock();
        shard.inserts += 1;
        if shard.inserts as usize >= shard.map.len().max(64) {
            shard.inserts = 0;
            shard.map.retain(|_, d| d.until_us > now);
        }
        match shard.map.get_mut(key) {
            Some(d) => *d = denied,
            None => {
                shard.map.insert(key.into(), denied);
            }
        }
    }

    pub(crate) fn remove(&self, key: &str) {
        self.shard(key).lock().map.remove(key);
    }
}

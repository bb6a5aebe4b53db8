//! The two window algorithms as pure state machines, shared by the in-memory backend.
//!
//! The Redis scripts in `lua/` implement exactly the same arithmetic (same operation order in
//! the approximate mode's floating point), so both backends give the same answers for the same
//! sequence of (time, cost) calls. Times are microseconds.

use std::collections::VecDeque;

/// What one decision produced, in backend-neutral units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) allowed: bool,
    pub(crate) remaining: u64,
    /// When denied: how long until `cost` would be admitted (0 when allowed).
    pub(crate) retry_us: u64,
    /// How long until even a cost of 1 can be admitted (0 if one could be now).
    pub(crate) blocked_us: u64,
    /// How long until the full budget is back (nothing left in the window).
    pub(crate) reset_us: u64,
    /// The decision's time (backend clock), identifies the admission for a refund.
    pub(crate) now_us: u64,
}

/// Exact mode: a log of admissions, oldest first, as `(time, cumulative count)`.
///
/// Storing the running total instead of per-entry counts makes "when does the k-th oldest
/// admission leave the window" a binary search (O(log n)) instead of a walk over the log, so a
/// client hammering at its limit costs O(log limit) per denial, not O(limit)
/// (python-limits #268). Admissions at the same instant share one entry.
#[derive(Debug, Default)]
pub(crate) struct ExactLog {
    entries: VecDeque<(u64, u64)>,
    /// Cumulative count of the admissions already trimmed out of the window.
    removed: u64,
}

impl ExactLog {
    /// Admissions in the window.
    fn total(&self) -> u64 {
        self.entries
            .back()
            .map_or(0, |&(_, cum)| cum - self.removed)
    }

    fn trim(&mut self, now: u64, window: u64) {
        // An admission at `t` counts while `t > now - window` (it frees at exactly `t + window`).
        while let Some(&(t, cum)) = self.entries.front() {
            if t.saturating_add(window) <= now {
                self.entries.pop_front();
                self.removed = cum;
            } else {
                break;
            }
        }
    }

    /// Time at which the admission with 0-based index `idx` (oldest first) leaves the window.
    fn free_at(&self, idx: u64, window: u64) -> u64 {
        let target = self.removed + idx + 1;
        let i = self.entries.partition_point(|&(_, cum)| cum < target);
        self.entries.get(i).map_or(0, |&(t, _)| t + window)
    }

    pub(crate) fn decide(&mut self, now: u64, window: u64, limit: u64, cost: u32) -> Outcome {
        self.trim(now, window);
        let cost64 = u64::from(cost);
        let mut allowed = false;
        if cost64 <= limit && self.total() + cost64 <= limit {
            allowed = true;
            if cost > 0 {
                let base = self.entries.back().map_or(self.removed, |&(_, cum)| cum);
                match self.entries.back_mut() {
                    Some((t, cum)) if *t == now => *cum += cost64,
                    _ => self.entries.push_back((now, base + cost64)),
                }
            }
        }
        let count = self.total();
        let retry_us = if allowed {
            0
        } else if cost64 > limit {
            window
        } else {
            self.free_at(count + cost64 - limit - 1, window) - now
        };
        let blocked_us = if count >= limit && limit > 0 {
            self.free_at(count - limit, window) - now
        } else if limit == 0 {
            window
        } else {
            0
        };
        let reset_us = self.entries.back().map_or(0, |&(t, _)| t + window - now);
        Outcome {
            allowed,
            remaining: limit.saturating_sub(count),
            retry_us,
            blocked_us,
            reset_us,
            now_us: now,
        }
    }

    /// Takes back up to `cost` admissions made at `at`.
    pub(crate) fn refund(&mut self, at: u64, cost: u32) {
        // Times never decrease and admissions at one instant share an entry: at most one
        // entry has time `at`.
        let j = self.entries.partition_point(|&(t, _)| t < at);
        let Some(&(t, cum)) = self.entries.get(j) else {
            return;
        };
        if t != at {
            return;
        }
        let before = if j == 0 {
            self.removed
        } else {
            self.entries[j - 1].1
        };
        let take = u64::from(cost).min(cum - before);
        for entry in self.entries.range_mut(j..) {
            entry.1 -= take;
        }
        if self.entries[j].1 == before {
            self.entries.remove(j);
        }
    }

    /// When this log stops mattering (everything in it has left the window).
    pub(crate) fn expires_at(&self, window: u64) -> u64 {
        self.entries.back().map_or(0, |&(t, _)| t + window)
    }
}

/// Approximate mode: counts of the current and the previous fixed window.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TwoWindows {
    /// Index of the current fixed window (`now / window`).
    w: u64,
    c: u64,
    p: u64,
}

/// The weighted estimate; the Lua script computes `p * ((window - elapsed) / window) + c`.
fn estimate(p: u64, c: u64, elapsed: u64, window: u64) -> f64 {
    let weight = (window - elapsed) as f64 / window as f64;
    p as f64 * weight + c as f64
}

/// How long, from a point `elapsed` into the current window with counts `p`/`c` and no further
/// admissions, until `k` more fit under `limit`. Rounded up, plus 1 µs against float rounding.
pub(crate) fn approx_wait(p: u64, c: u64, elapsed: u64, window: u64, limit: u64, k: u64) -> u64 {
    if estimate(p, c, elapsed, window) + k as f64 <= limit as f64 {
        return 0;
    }
    let rem = window - elapsed;
    if c + k <= limit {
        // Within this window, as the previous window's weight decays.
        let t = rem as f64 - (limit - k - c) as f64 * window as f64 / p as f64;
        (t.ceil().max(0.0) as u64 + 1).min(rem)
    } else {
        // In the next window, where this window's count decays instead (c > 0 here).
        let e = window as f64 - (limit.saturating_sub(k)) as f64 * window as f64 / c as f64;
        rem + (e.ceil().max(0.0) as u64 + 1).min(window)
    }
}

impl TwoWindows {
    fn roll(&mut self, w: u64) {
        if self.w == w {
        } else if self.w + 1 == w {
            self.p = self.c;
            self.c = 0;
        } else {
            self.p = 0;
            self.c = 0;
        }
        self.w = w;
    }

    pub(crate) fn decide(&mut self, now: u64, window: u64, limit: u64, cost: u32) -> Outcome {
        let w = now / window;
        let elapsed = now - w * window;
        self.roll(w);
        let cost64 = u64::from(cost);
        let est = estimate(self.p, self.c, elapsed, window);
        let allowed = cost64 <= limit && est + cost64 as f64 <= limit as f64;
        if allowed {
            self.c += cost64;
        }
        let est = estimate(self.p, self.c, elapsed, window);
        let retry_us = if allowed {
            0
        } else if cost64 > limit {
            window
        } else {
            approx_wait(self.p, self.c, elapsed, window, limit, cost64)
        };
        let blocked_us = if limit == 0 {
            window
        } else {
            approx_wait(self.p, self.c, elapsed, window, limit, 1)
        };
        let reset_us = if self.c > 0 {
            2 * window - elapsed
        } else if self.p > 0 {
            window - elapsed
        } else {
            0
        };
        Outcome {
            allowed,
            remaining: (limit as f64 - est).floor().max(0.0) as u64,
            retry_us,
            blocked_us,
            reset_us,
            now_us: now,
        }
    }

    /// Takes back `cost` admitted at time `at`.
    pub(crate) fn refund(&mut self, at: u64, window: u64, cost: u32) {
        let w = at / window;
        if w == self.w {
            self.c = self.c.saturating_sub(u64::from(cost));
        } else if w + 1 == self.w {
            self.p = self.p.saturating_sub(u64::from(cost));
        }
    }

    pub(crate) fn expires_at(&self, window: u64) -> u64 {
        (self.w + 2) * window
    }
}

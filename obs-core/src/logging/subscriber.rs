//! [`LogSubscriber`]: obs's own `tracing` subscriber for when obs's log output is the only
//! consumer of spans (what [`try_init`](super::try_init) installs).
//!
//! `tracing_subscriber::Registry` is general: every span gets a slot in a lock-free slab with
//! a type map of extensions, and every lookup (each close, clone, extension access) takes and
//! releases a reference on the slot with atomic read-modify-writes: obs's `request` span took
//! ~34 of them per request there (`benches/stack.rs`, counted with valgrind; see
//! `benches/README.md`, `## stack`). The log output needs much less of a span: its parent, its
//! request fields (if it has any) and a reference count. Here that lives in a slot of a small
//! sharded slab behind a plain mutex, so a span's whole life (create, enter/exit on every poll,
//! close) is two uncontended lock/unlock pairs plus the request context's reference count (6
//! atomic operations); entering and leaving touch only a thread-local stack.
//!
//! Layers (Sentry, OpenTelemetry) need `Registry`'s `LookupSpan`; with them, obs uses
//! [`LogLayer`](super::LogLayer) on a `Registry` instead (the facade does this by itself).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_core::span::Current;
use tracing_subscriber::fmt::MakeWriter;

use super::layer::{Output, RequestInfo, SpanRequest};
use super::LogFormat;
use crate::RequestContext;

/// Shards of the span slab (a power of two). Threads are spread over them round-robin, so
/// runtime workers creating spans at the same time rarely share a mutex or its cache line.
const SHARDS: usize = 8;

/// The subscriber behind [`try_init`](super::try_init): JSON or pretty lines, like
/// [`LogLayer`](super::LogLayer), with its own minimal span store instead of a `Registry`.
pub(super) struct LogSubscriber<W> {
    output: Output<W>,
    store: SpanStore,
}

impl<W> LogSubscriber<W> {
    pub(super) fn new(format: LogFormat, make_writer: W, ansi: bool) -> Self {
        let mut output = Output::new(format, make_writer);
        output.ansi = ansi;
        LogSubscriber {
            output,
            store: SpanStore::new(),
        }
    }
}

impl<W> Subscriber for LogSubscriber<W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Filtering is the job of the filter layered on top (see `super::dispatch`).
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        // Field values are user code (`Debug` impls may log): read them before any lock.
        let request = SpanRequest::from_new_span(attrs);
        let parent = if attrs.is_contextual() {
            self.store.current()
        } else {
            attrs.parent().cloned()
        };
        if let Some(parent) = &parent {
            self.store.clone_span(parent);
        }
        self.store.insert(attrs.metadata(), parent, request)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        // Record on a copy outside the lock (user code again), then store it back.
        let Some(Some(mut request)) = self.store.with(span, |slot| slot.request.clone()) else {
            return;
        };
        request.record(values);
        self.store.with(span, |slot| slot.request = Some(request));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        RequestContext::with_current(|current| {
            if let Some(current) = current {
                return self
                    .output
                    .write(event, &RequestInfo::from_context(current));
            }
            let span = if event.is_contextual() {
                self.store.current()
            } else {
                event.parent().cloned()
            };
            let request = span.and_then(|span| self.store.request_of(span));
            let info = request.as_ref().and_then(SpanRequest::info);
            self.output.write(event, &info.unwrap_or_default())
        });
    }

    fn enter(&self, span: &Id) {
        let _ = STACK.try_with(|stack| stack.borrow_mut().push((self.store.tag, span.clone())));
    }

    fn exit(&self, span: &Id) {
        let _ = STACK.try_with(|stack| {
            let mut stack = stack.borrow_mut();
            let tag = self.store.tag;
            if let Some(i) = stack.iter().rposition(|(t, id)| *t == tag && id == span) {
                stack.remove(i);
            }
        });
    }

    fn clone_span(&self, span: &Id) -> Id {
        self.store.clone_span(span);
        span.clone()
    }

    fn try_close(&self, span: Id) -> bool {
        self.store.close(span)
    }

    fn current_span(&self) -> Current {
        let Some(id) = self.store.current() else {
            return Current::none();
        };
        // An entered span is open (its guard holds a reference), so it is found.
        match self.store.with(&id, |slot| slot.metadata) {
            Some(metadata) => Current::new(id, metadata),
            None => Current::none(),
        }
    }
}

thread_local! {
    /// The spans entered on this thread, innermost last, each with the tag of the store it
    /// belongs to (several subscribers can be in use on one thread: scoped dispatchers).
    static STACK: RefCell<Vec<(usize, Id)>> = const { RefCell::new(Vec::new()) };
    /// This thread's shard, assigned on first use.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Assigns shards to threads round-robin.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);
/// Tells stores apart on the thread-local stack.
static NEXT_TAG: AtomicUsize = AtomicUsize::new(1);

fn thread_shard() -> usize {
    SHARD
        .try_with(|shard| {
            if shard.get() == usize::MAX {
                shard.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
            }
            shard.get()
        })
        .unwrap_or(0)
}

/// A live span.
struct Slot {
    metadata: &'static Metadata<'static>,
    /// The parent, which this span keeps open (a reference is held).
    parent: Option<Id>,
    request: Option<SpanRequest>,
    refs: usize,
}

/// One shard: slots and a free list. A slot's generation (24 bits, as in the id) changes each
/// time it is freed, so an id of a closed span never finds the span that reuses its slot.
#[derive(Default)]
struct Slab {
    slots: Vec<(u32, Option<Slot>)>,
    free: Vec<u32>,
}

/// Keeps each shard's mutex on its own cache line.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Slab>);

/// Span ids: `generation << 40 | shard << 32 | (index + 1)`; never zero.
struct SpanStore {
    shards: Box<[Shard]>,
    tag: usize,
}

/// Generations wrap at 24 bits, the width they have in an id.
const GENERATION_MASK: u32 = 0xff_ffff;

fn encode(generation: u32, shard: usize, index: u32) -> Id {
    let raw = (u64::from(generation & GENERATION_MASK) << 40)
        | ((shard as u64) << 32)
        | (u64::from(index) + 1);
    Id::from_u64(raw)
}

fn decode(id: &Id) -> (u32, usize, usize) {
    let raw = id.into_u64();
    let index = (raw & 0xffff_ffff) as usize;
    // Index 0 cannot come from `encode`; it wraps to a slot that never exists.
    (
        (raw >> 40) as u32,
        ((raw >> 32) & 0xff) as usize,
        index.wrapping_sub(1),
    )
}

impl SpanStore {
    fn new() -> Self {
        SpanStore {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            tag: NEXT_TAG.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn lock(&self, shard: usize) -> Option<std::sync::MutexGuard<'_, Slab>> {
        let shard = self.shards.get(shard)?;
        // Nothing here panics while holding the lock, but a poisoned shard stays usable.
        Some(shard.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn insert(
        &self,
        metadata: &'static Metadata<'static>,
        parent: Option<Id>,
        request: Option<SpanRequest>,
    ) -> Id {
        let shard = thread_shard();
        let mut slab = self.lock(shard).expect("thread_shard is below SHARDS");
        let slot = Slot {
            metadata,
            parent,
            request,
            refs: 1,
        };
        let index = match slab.free.pop() {
            Some(index) => index,
            None => {
                // More than 4 billion live spans in one shard cannot fit an id: a process that
                // leaks spans that badly has failed already.
                let index = u32::try_from(slab.slots.len()).expect("span slab index fits u32");
                slab.slots.push((0, None));
                index
            }
        };
        let entry = &mut slab.slots[index as usize];
        entry.1 = Some(slot);
        encode(entry.0, shard, index)
    }

    /// Runs `f` on the live span `id` (under its shard's lock: `f` must not call user code).
    fn with<R>(&self, id: &Id, f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
        let (generation, shard, index) = decode(id);
        let mut slab = self.lock(shard)?;
        match slab.slots.get_mut(index) {
            Some((g, Some(slot))) if *g == generation => Some(f(slot)),
            _ => None,
        }
    }

    fn clone_span(&self, id: &Id) {
        self.with(id, |slot| slot.refs += 1);
    }

    /// Drops a reference; frees the span (and drops its reference on its parent) at zero.
    /// `true` if this closed the span.
    fn close(&self, id: Id) -> bool {
        let Some(freed) = self.release(&id) else {
            return false;
        };
        let mut parent = freed.parent;
        while let Some(id) = parent {
            parent = self.release(&id).and_then(|slot| slot.parent);
        }
        true
    }

    /// Drops one reference to the live span `id`; its slot's contents if that was the last.
    /// They are dropped by the caller, outside the lock (the request context's last
    /// reference may go with them).
    fn release(&self, id: &Id) -> Option<Slot> {
        let (generation, shard, index) = decode(id);
        let mut slab = self.lock(shard)?;
        let slab = &mut *slab;
        let (g, entry) = slab.slots.get_mut(index)?;
        let slot = entry.as_mut().filter(|_| *g == generation)?;
        slot.refs -= 1;
        if slot.refs > 0 {
            return None;
        }
        *g = g.wrapping_add(1) & GENERATION_MASK;
        slab.free.push(index as u32);
        entry.take()
    }

    /// The innermost span of this store entered on this thread.
    fn current(&self) -> Option<Id> {
        STACK
            .try_with(|stack| {
                let stack = stack.borrow();
                stack
                    .iter()
                    .rev()
                    .find(|(tag, _)| *tag == self.tag)
                    .map(|(_, id)| id.clone())
            })
            .ok()
            .flatten()
    }

    /// The request of the nearest span in `id`'s ancestry that names one (copied out, so no
    /// lock is held while the line is formatted).
    fn request_of(&self, id: Id) -> Option<SpanRequest> {
        let mut next = Some(id);
        while let Some(id) = next.take() {
            let found = self.with(&id, |slot| {
                match slot.request.as_ref().filter(|r| r.info().is_some()) {
                    Some(request) => Ok(request.clone()),
                    None => Err(slot.parent.clone()),
                }
            })?;
            match found {
                Ok(request) => return Some(request),
                Err(parent) => next = parent,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any callsite's metadata (taken from a span some subscriber enables).
    fn metadata() -> &'static Metadata<'static> {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            tracing::info_span!("span")
                .metadata()
                .expect("an enabled span")
        })
    }

    #[test]
    fn ids_round_trip_and_are_never_zero() {
        for (generation, shard, index) in [
            (0, 0, 0),
            (1, 7, 41),
            (0xff_ffff, 7, u32::MAX - 1),
            (0x1ff_ffff, 3, 9),
        ] {
            let id = encode(generation, shard, index);
            assert_ne!(id.into_u64(), 0);
            assert_eq!(
                decode(&id),
                (generation & GENERATION_MASK, shard, index as usize)
            );
        }
    }

    #[test]
    fn a_closed_span_id_does_not_reach_the_span_reusing_its_slot() {
        let store = SpanStore::new();
        let metadata = metadata();
        let first = store.insert(metadata, None, None);
        assert!(store.close(first.clone()));
        let second = store.insert(metadata, None, None);
        assert_ne!(first, second, "the slot is reused with a new generation");
        assert_eq!(store.with(&first, |_| ()), None);
        assert!(!store.close(first), "a stale id closes nothing");
        assert_eq!(store.with(&second, |slot| slot.refs), Some(1));
    }

    #[test]
    fn references_keep_a_span_and_its_parent_alive() {
        let store = SpanStore::new();
        let metadata = metadata();
        let parent = store.insert(metadata, None, None);
        store.clone_span(&parent); // the child's reference
        let child = store.insert(metadata, Some(parent.clone()), None);
        store.clone_span(&child);
        assert!(!store.close(child.clone()), "one reference left");
        assert!(
            !store.close(parent.clone()),
            "the child still holds the parent"
        );
        assert_eq!(store.with(&parent, |slot| slot.refs), Some(1));
        assert!(store.close(child.clone()), "last reference");
        assert_eq!(store.with(&child, |_| ()), None);
        assert_eq!(
            store.with(&parent, |_| ()),
            None,
            "closed with its last child"
        );
    }

    #[test]
    fn forged_ids_are_ignored() {
        let store = SpanStore::new();
        for raw in [1, 0xff_0000_0001, u64::MAX, 1 << 40] {
            let id = Id::from_u64(raw);
            assert_eq!(store.with(&id, |_| ()), None);
            assert!(!store.close(id));
        }
    }
}

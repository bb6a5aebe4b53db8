//! [`RequestId`]: the identifier that ties one request's log lines, metrics exemplars,
//! Sentry events and telemetry together.
//!
//! A request ID is 1 to [`RequestId::MAX_LEN`] bytes of `[A-Za-z0-9._:-]`. The alphabet is
//! deliberately narrow: an ID is echoed into response headers and written into log lines, so
//! anything that could split a header (CR/LF), break a log format (quotes, spaces, control
//! bytes) or confuse a reader (unicode look-alikes) is rejected at parse time, not escaped later.
//!
//! Generated IDs are UUIDv7: time-sortable to the millisecond, so IDs in logs sort by arrival,
//! and unique without coordination (74 random bits). IDs up to 48 bytes (every UUID form, most upstream proxies' IDs) are stored
//! inline, so generating or cloning one does not allocate.
//!
//! ```
//! use obs_core::RequestId;
//!
//! let generated = RequestId::generate();
//! assert_eq!(generated.as_str().len(), 36); // hyphenated UUIDv7
//!
//! let inbound: RequestId = "req-789".parse().unwrap();
//! assert_eq!(inbound.as_str(), "req-789");
//!
//! // Hostile input is rejected with a typed error that never repeats the value.
//! let err = "abc\r\nSet-Cookie: x".parse::<RequestId>().unwrap_err();
//! assert_eq!(err.to_string(), "request ID has a byte outside [A-Za-z0-9._:-] at position 3");
//! ```

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use uuid::Uuid;

/// Bytes kept inline before an ID spills to a shared heap allocation.
const INLINE_CAP: usize = 48;

/// A validated request identifier: 1..=128 bytes of `[A-Za-z0-9._:-]`.
///
/// Cheap to clone (inline up to 48 bytes, reference-counted above), compared and hashed by
/// its string value.
#[derive(Clone)]
pub struct RequestId(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE_CAP] },
    Shared(Arc<str>),
}

/// Why a value was not accepted as a [`RequestId`].
///
/// The error never contains the rejected value: it may be hostile (log injection) or private.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequestId {
    /// The value was empty.
    #[error("request ID is empty")]
    Empty,
    /// The value was longer than [`RequestId::MAX_LEN`] bytes.
    #[error("request ID is {len} bytes long, the maximum is 128")]
    TooLong {
        /// Length of the rejected value in bytes.
        len: usize,
    },
    /// The value contained a byte outside `[A-Za-z0-9._:-]`.
    #[error("request ID has a byte outside [A-Za-z0-9._:-] at position {position}")]
    InvalidByte {
        /// Zero-based byte offset of the first rejected byte.
        position: usize,
    },
}

impl RequestId {
    /// Longest accepted ID, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Generates a new time-sortable ID (UUIDv7, lowercase hyphenated). Does not allocate, and
    /// takes its randomness from a per-thread pool refilled from the OS every 32 IDs.
    pub fn generate() -> Self {
        generate::request_id()
    }

    /// Wraps an existing UUID (any version) in its lowercase hyphenated form.
    pub fn from_uuid(uuid: Uuid) -> Self {
        let mut buf = [0u8; INLINE_CAP];
        let len = uuid.hyphenated().encode_lower(&mut buf).len();
        RequestId(Repr::Inline {
            len: len as u8,
            buf,
        })
    }

    /// Validates raw bytes, e.g. an HTTP header value, without assuming they are UTF-8.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InvalidRequestId> {
        if !bytes.is_empty() && bytes.len() <= INLINE_CAP {
            // The usual ID (every UUID form): copy it into the inline buffer padded with a
            // valid byte, then check the whole buffer — three fixed 16-byte blocks, no
            // length-dependent tail, no second pass over the input.
            let mut buf = [b'0'; INLINE_CAP];
            buf[..bytes.len()].copy_from_slice(bytes);
            if crate::blocks::all(&buf, b'0', is_id_byte) {
                return Ok(RequestId(Repr::Inline {
                    len: bytes.len() as u8,
                    buf,
                }));
            }
        }
        validate(bytes)?;
        Ok(Self::from_valid(bytes))
    }

    /// Validates a string. Same as [`str::parse`].
    pub fn parse(s: &str) -> Result<Self, InvalidRequestId> {
        Self::from_bytes(s.as_bytes())
    }

    /// The ID as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Validated ASCII on construction, so this never fails; `from_utf8` on <= 48 ASCII
            // bytes is a handful of nanoseconds and keeps the crate free of `unsafe`.
            Repr::Inline { len, buf } => {
                std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Shared(s) => s,
        }
    }

    /// The ID as bytes (always ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Shared(s) => s.as_bytes(),
        }
    }

    fn from_valid(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE_CAP {
            let mut buf = [0u8; INLINE_CAP];
            buf[..bytes.len()].copy_from_slice(bytes);
            RequestId(Repr::Inline {
                len: bytes.len() as u8,
                buf,
            })
        } else {
            // Validated ASCII, so the conversion cannot fail.
            let s = std::str::from_utf8(bytes).unwrap_or_default();
            RequestId(Repr::Shared(Arc::from(s)))
        }
    }
}

/// True for the bytes a request ID may contain: `[A-Za-z0-9._:-]`.
///
/// Compares without branches or a table look-up, so [`crate::blocks::all`] turns it into SIMD
/// compares over 16-byte blocks (a 36-byte UUID is three block checks). Four range/equality
/// tests: `-`, `.`, the digits and `:` are the run `0x2d..=0x3a` minus `/` (`0x2f`).
#[inline(always)]
const fn is_id_byte(b: u8) -> bool {
    // `b | 0x20` lowercases ASCII letters; only `A-Z` and `a-z` land in `a..=z`.
    let lower = b | 0x20;
    ((b.wrapping_sub(b'-') < 14) & (b != b'/')) | (lower.wrapping_sub(b'a') < 26) | (b == b'_')
}

fn validate(bytes: &[u8]) -> Result<(), InvalidRequestId> {
    if bytes.is_empty() {
        return Err(InvalidRequestId::Empty);
    }
    if bytes.len() > RequestId::MAX_LEN {
        return Err(InvalidRequestId::TooLong { len: bytes.len() });
    }
    if crate::blocks::all(bytes, b'0', is_id_byte) {
        return Ok(());
    }
    // The position is only searched on failure.
    let position = bytes
        .iter()
        .position(|&b| !is_id_byte(b))
        .unwrap_or_default();
    Err(InvalidRequestId::InvalidByte { position })
}

impl FromStr for RequestId {
    type Err = InvalidRequestId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for RequestId {
    type Error = InvalidRequestId;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl TryFrom<String> for RequestId {
    type Error = InvalidRequestId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Uuid> for RequestId {
    fn from(uuid: Uuid) -> Self {
        Self::from_uuid(uuid)
    }
}

impl AsRef<str> for RequestId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for RequestId {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<str> for RequestId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

impl PartialEq for RequestId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for RequestId {}

impl PartialEq<str> for RequestId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RequestId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Hash for RequestId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialOrd for RequestId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RequestId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl serde::Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RequestId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a request ID of 1..=128 bytes of [A-Za-z0-9._:-]")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RequestId, E> {
                RequestId::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Fast UUIDv7 generation for [`RequestId::generate`].
///
/// uuid's `now_v7` makes one `getrandom` system call per ID plus a lock for its monotonic
/// counter; under load that system call is most of a request ID's cost. Here each thread draws randomness from the OS CSPRNG in batches of
/// [`POOL_IDS`] IDs (one system call per batch; every random byte is used once), and the
/// 48-bit millisecond timestamp comes from the system clock. IDs are UUIDv7 with 74 random
/// bits, sortable to the millisecond (not within one). If the OS RNG fails, it falls back
/// to uuid's `now_v7`. Measured in `benches/request_id.rs` (0.55x tower-http's `MakeRequestUuid`).
///
/// Caveat: a process that `fork`s (without `exec`) after generating IDs hands the unused
/// pool bytes of the forking thread to the child, so up to 31 IDs could repeat between the
/// two; Rust services do not fork after serving requests, and tokio does not support it.
mod generate {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::RequestId;

    /// IDs per `getrandom` call.
    pub(super) const POOL_IDS: usize = 32;
    const ID_RANDOM: usize = 10;

    struct Pool {
        bytes: [u8; ID_RANDOM * POOL_IDS],
        next: usize,
    }

    thread_local! {
        static POOL: RefCell<Pool> = const {
            RefCell::new(Pool { bytes: [0; ID_RANDOM * POOL_IDS], next: POOL_IDS })
        };
    }

    fn random() -> Option<[u8; ID_RANDOM]> {
        POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.next == POOL_IDS {
                getrandom::fill(&mut pool.bytes).ok()?;
                pool.next = 0;
            }
            let start = pool.next * ID_RANDOM;
            pool.next += 1;
            let mut out = [0u8; ID_RANDOM];
            out.copy_from_slice(&pool.bytes[start..start + ID_RANDOM]);
            // Used bytes are wiped so a later reader of the buffer cannot recover past IDs.
            pool.bytes[start..start + ID_RANDOM].fill(0);
            Some(out)
        })
        .ok()
        .flatten()
    }

    /// A new UUIDv7 request ID.
    pub(super) fn request_id() -> RequestId {
        let Some(random) = random() else {
            return RequestId::from_uuid(uuid::Uuid::now_v7());
        };
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        RequestId::from_uuid(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::collections::HashSet;

        #[test]
        fn ids_are_unique_uuid_v7_with_the_current_time() {
            let before = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            let ids: Vec<_> = (0..POOL_IDS * 5 + 3).map(|_| request_id()).collect();
            let after = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            let set: HashSet<_> = ids.iter().map(|i| i.as_str().to_owned()).collect();
            assert_eq!(set.len(), ids.len());
            for id in &ids {
                let uuid = uuid::Uuid::parse_str(id.as_str()).unwrap();
                assert_eq!(uuid.get_version_num(), 7);
                assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
                let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
                let ms = secs * 1000 + u64::from(nanos) / 1_000_000;
                assert!(
                    (before..=after).contains(&ms),
                    "{ms} not in {before}..={after}"
                );
            }
        }

        #[test]
        fn threads_draw_different_ids() {
            let a = std::thread::spawn(|| (0..64).map(|_| request_id()).collect::<Vec<_>>());
            let b = std::thread::spawn(|| (0..64).map(|_| request_id()).collect::<Vec<_>>());
            let mut all: Vec<_> = a.join().unwrap();
            all.extend(b.join().unwrap());
            let set: HashSet<_> = all.iter().map(|i| i.as_str().to_owned()).collect();
            assert_eq!(set.len(), 128);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The alphabet as first written (and documented): the oracle for the block check.
    fn reference_is_id_byte(b: u8) -> bool {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
    }

    #[test]
    fn id_byte_predicate_matches_the_documented_alphabet() {
        for b in 0..=u8::MAX {
            assert_eq!(is_id_byte(b), reference_is_id_byte(b), "byte {b:#04x}");
        }
    }

    /// Every byte value at every position of every length up to 52 (both sides of the
    /// 16-byte block, the overlapping-tail cases, and both sides of the 48-byte inline
    /// fast path that checks a padded copy), exhaustively.
    #[test]
    fn every_bad_byte_is_found_at_every_position_and_length() {
        for len in 1..=52 {
            for pos in 0..len {
                for b in 0..=u8::MAX {
                    let mut bytes = vec![b'a'; len];
                    bytes[pos] = b;
                    let got = RequestId::from_bytes(&bytes);
                    if reference_is_id_byte(b) {
                        let id = got
                            .unwrap_or_else(|e| panic!("len {len} pos {pos} byte {b:#04x}: {e}"));
                        assert_eq!(id.as_bytes(), &bytes[..], "len {len} pos {pos}");
                    } else {
                        assert_eq!(
                            got.unwrap_err(),
                            InvalidRequestId::InvalidByte { position: pos },
                            "len {len} pos {pos} byte {b:#04x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn generated_ids_are_uuid_v7_and_sort_by_millisecond() {
        let ids: Vec<RequestId> = (0..1000).map(|_| RequestId::generate()).collect();
        let millis = |id: &RequestId| {
            let (secs, nanos) = Uuid::parse_str(id.as_str())
                .unwrap()
                .get_timestamp()
                .unwrap()
                .to_unix();
            secs * 1000 + u64::from(nanos) / 1_000_000
        };
        for pair in ids.windows(2) {
            assert_eq!(
                Uuid::parse_str(pair[0].as_str()).unwrap().get_version_num(),
                7
            );
            // Sortable by time to the millisecond (the order within one millisecond is random).
            assert!(millis(&pair[0]) <= millis(&pair[1]), "{pair:?}");
            if millis(&pair[0]) < millis(&pair[1]) {
                assert!(pair[0] < pair[1], "{pair:?}");
            }
        }
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn accepts_the_full_alphabet_and_both_length_limits() {
        let id = RequestId::parse("Az09._:-").unwrap();
        assert_eq!(id.as_str(), "Az09._:-");
        assert_eq!(RequestId::parse("x").unwrap().as_str(), "x");
        let max = "a".repeat(128);
        assert_eq!(RequestId::parse(&max).unwrap().as_str(), max);
        // Inline/shared boundary round-trips too.
        for len in [47, 48, 49] {
            let s = "b".repeat(len);
            assert_eq!(RequestId::parse(&s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn rejects_with_typed_errors() {
        assert_eq!(RequestId::parse(""), Err(InvalidRequestId::Empty));
        assert_eq!(
            RequestId::parse(&"a".repeat(129)),
            Err(InvalidRequestId::TooLong { len: 129 })
        );
        assert_eq!(
            RequestId::parse("ok\r\ninjected"),
            Err(InvalidRequestId::InvalidByte { position: 2 })
        );
        assert_eq!(
            RequestId::from_bytes(b"a\0b"),
            Err(InvalidRequestId::InvalidByte { position: 1 })
        );
        assert_eq!(
            RequestId::from_bytes(&[b'a', 0xff, 0xfe]),
            Err(InvalidRequestId::InvalidByte { position: 1 })
        );
        // Fullwidth 'Ａ' (U+FF21) looks like 'A' but is not ASCII.
        assert_eq!(
            RequestId::parse("\u{FF21}bc"),
            Err(InvalidRequestId::InvalidByte { position: 0 })
        );
        assert!(RequestId::parse("has space").is_err());
        assert!(RequestId::parse("quote\"").is_err());
    }

    #[test]
    fn error_messages_never_contain_the_value() {
        let hostile = "evil\nvalue";
        let msg = RequestId::parse(hostile).unwrap_err().to_string();
        assert!(!msg.contains("evil"), "{msg}");
    }

    #[test]
    fn serde_round_trip_validates() {
        let id = RequestId::parse("req-1").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"req-1\"");
        let back: RequestId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<RequestId>("\"bad id\"").is_err());
    }

    #[test]
    fn equality_and_hash_follow_the_string() {
        use std::collections::HashSet;
        let long = "c".repeat(100);
        let a = RequestId::parse(&long).unwrap();
        let b = RequestId::parse(&long).unwrap();
        assert_eq!(a, b);
        let set: HashSet<_> = [a, b].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert!(set.contains(long.as_str()));
    }

    proptest! {
        #[test]
        fn valid_ids_round_trip(s in "[A-Za-z0-9._:-]{1,128}") {
            let id = RequestId::parse(&s).unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
            prop_assert_eq!(id.to_string(), s);
        }

        #[test]
        fn anything_else_is_rejected_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let ok = !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|&b| reference_is_id_byte(b));
            prop_assert_eq!(RequestId::from_bytes(&bytes).is_ok(), ok);
        }

        /// Mostly-valid IDs with one or two arbitrary bytes at arbitrary places: the block
        /// check must agree with the byte-wise reference, and report the first bad position.
        #[test]
        fn block_validation_matches_bytewise_reference(
            base in "[A-Za-z0-9._:-]{1,128}",
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        ) {
            let mut bytes = base.into_bytes();
            for (at, b) in edits {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            let first_bad = bytes.iter().position(|&b| !reference_is_id_byte(b));
            match first_bad {
                None => prop_assert!(RequestId::from_bytes(&bytes).is_ok()),
                Some(position) => prop_assert_eq!(
                    RequestId::from_bytes(&bytes).unwrap_err(),
                    InvalidRequestId::InvalidByte { position }
                ),
            }
        }
    }
}

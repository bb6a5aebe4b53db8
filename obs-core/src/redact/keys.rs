//! Key matching: split a key into words, then look up consecutive word windows in a small
//! sorted set (no regex alternation, no hashing, no allocation for keys up to 64 bytes).
//! Before any splitting, a key is rejected when it is shorter than every entry or its set
//! of (case-folded) bytes contains no entry's byte set — one table look-up per byte, which
//! turns away most keys of log lines (`status`, `order_id`, `duration_ms`); a key of one
//! word (letters in one case after the first: `tokens`, `Password`) is looked up whole.
//!
//! Splitting rules: any non-alphanumeric ASCII byte separates words (`_`, `-`, `.`, space,
//! ...); a lower-case letter followed by an upper-case one starts a new word (`authToken`);
//! in a run of capitals the last one starts a new word when a lower-case letter follows
//! (`APIKey` -> `api`, `key`); letters and digits are separate words (`token2`). Words are
//! lower-cased. Non-ASCII bytes stay inside their word.
//!
//! A key list entry is split the same way and its words concatenated (`api_key` ->
//! `apikey`). A key matches the entry when 1 to 4 *consecutive whole words* of the key
//! concatenate to exactly that string: `x-api-key`, `apiKey`, `APIKEY` and `api_key` all
//! match `api_key`; `auth` matches `auth_token` and `X-Auth` but not `author` or
//! `authenticated`; `token` does not match `tokens`.

/// Longest word window tried (entries longer than this many key words never match).
const MAX_WINDOW: usize = 4;
/// Keys up to this length are split on the stack.
const STACK_KEY: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Sep,
    Lower,
    Upper,
    Digit,
}

const fn class_of(c: u8) -> Class {
    match c {
        b'a'..=b'z' | 0x80..=0xff => Class::Lower,
        b'A'..=b'Z' => Class::Upper,
        b'0'..=b'9' => Class::Digit,
        _ => Class::Sep,
    }
}

const CLASSES: [Class; 256] = {
    let mut t = [Class::Sep; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = class_of(i as u8);
        i += 1;
    }
    t
};

#[inline]
fn class(c: u8) -> Class {
    CLASSES[usize::from(c)]
}

/// Splits `key` into lower-cased word bytes in `buf` and word start offsets in `bounds`
/// (with a final end offset). `buf.len() >= key.len()`, `bounds.len() > key.len()`.
/// Returns the number of words.
fn split(key: &[u8], buf: &mut [u8], bounds: &mut [u16]) -> usize {
    let mut n = 0usize;
    let mut words = 0usize;
    let mut prev = Class::Sep;
    for (i, &c) in key.iter().enumerate() {
        let cls = class(c);
        if cls == Class::Sep {
            prev = Class::Sep;
            continue;
        }
        let boundary = match (prev, cls) {
            (Class::Sep, _) => true,
            (Class::Lower, Class::Upper) => true,
            (Class::Upper, Class::Upper) => key.get(i + 1).is_some_and(u8::is_ascii_lowercase),
            (Class::Digit, Class::Lower | Class::Upper) => true,
            (Class::Lower | Class::Upper, Class::Digit) => true,
            _ => false,
        };
        if boundary {
            bounds[words] = n as u16;
            words += 1;
        }
        buf[n] = c.to_ascii_lowercase();
        n += 1;
        prev = cls;
    }
    bounds[words] = n as u16;
    words
}

/// The normalised form of a key list entry: its words concatenated, lower-case.
pub(crate) fn normalize(entry: &str) -> Vec<u8> {
    let key = entry.as_bytes();
    let mut buf = vec![0u8; key.len()];
    let mut bounds = vec![0u16; key.len() + 1];
    let words = split(key, &mut buf, &mut bounds);
    buf.truncate(usize::from(bounds[words]));
    buf
}

/// Sorted set of normalised key entries, each pointing at its rule.
#[derive(Debug, Clone)]
pub(crate) struct KeyMatcher {
    entries: Vec<(Box<[u8]>, u16)>,
    /// Bit `n` set when some entry has length `n` (lengths >= 63 share bit 63).
    len_mask: u64,
    /// Prefilter: hashed first two bytes of every entry (of length >= 2).
    first2: [u64; 16],
    /// Prefilter: first byte of every one-byte entry.
    first1: [u64; 4],
    /// Exact-ish filter on (length, first byte, last byte) of every entry.
    shape: [u64; 64],
    /// Minimal byte-set masks ([`byte_mask`]) of the entries, padded with `u32::MAX` (never
    /// contained): a key whose byte set contains none of them cannot match (a window equal
    /// to an entry holds all its bytes). All zero (filter off) past `MAX_MASKS`.
    masks: [u32; MAX_MASKS],
    /// Length of the shortest entry: a key with fewer bytes cannot match.
    min_len: usize,
    /// Some entry is made of digits and `t` only, so it could match words of an ISO-8601
    /// timestamp (`2024-01-15T10`): the scanner's timestamp fast path is then off.
    timestamp_like: bool,
}

/// Flag bit in [`BYTE_BITS`]: an upper-case ASCII letter.
const UPPER: u32 = 1 << 28;
/// Flag bit in [`BYTE_BITS`]: a lower-case ASCII letter.
const LOWER: u32 = 1 << 29;
/// Flag bit in [`BYTE_BITS`]: anything but an ASCII letter.
const OTHER: u32 = 1 << 30;
/// The word-byte bits of [`BYTE_BITS`] (no flags).
const WORD_BITS: u32 = (1 << 28) - 1;
/// How many minimal entry masks the filter holds; with more, it lets every key through.
const MAX_MASKS: usize = 16;

/// Per byte: a word-byte bit (letters of either case 0-25, any digit 26, any non-ASCII byte
/// 27, separators none) plus one flag (`UPPER`, `LOWER`, `OTHER`).
const BYTE_BITS: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = match c {
            b'a'..=b'z' => 1 << (c - b'a') | LOWER,
            b'A'..=b'Z' => 1 << (c - b'A') | UPPER,
            b'0'..=b'9' => 1 << 26 | OTHER,
            0x80..=0xff => 1 << 27 | OTHER,
            _ => OTHER,
        };
        i += 1;
    }
    t
};

/// Flag bit in [`KEY_SCAN`]: not a byte of an in-text key (`[A-Za-z0-9_.-]`).
pub(crate) const NOT_KEY: u32 = 1 << 31;

/// Per byte: [`BYTE_BITS`] for the bytes of an in-text key (`[A-Za-z0-9_.-]`), [`NOT_KEY`]
/// for every other byte. One look-up per byte both finds the start of a key before `=`/`:`
/// and builds the key's [`byte_mask`] for [`KeyMatcher::find_with_mask`].
pub(crate) const KEY_SCAN: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' {
            BYTE_BITS[i]
        } else {
            NOT_KEY
        };
        i += 1;
    }
    t
};

/// The union of [`BYTE_BITS`] over `bytes`: the set of (case-folded) word bytes plus flags.
#[inline]
fn byte_mask(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0u32, |m, &c| m | BYTE_BITS[usize::from(c)])
}

#[inline]
fn h3(w: &[u8]) -> usize {
    shape_hash(w.len(), w[0], w[w.len() - 1])
}

/// Hash of (length, first byte, last byte) of a normalised word window.
#[inline]
fn shape_hash(len: usize, first: u8, last: u8) -> usize {
    (len * 131 + usize::from(first) * 31 + usize::from(last)) & 4095
}

impl Default for KeyMatcher {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            len_mask: 0,
            first2: [0; 16],
            first1: [0; 4],
            shape: [0; 64],
            masks: [u32::MAX; MAX_MASKS],
            min_len: usize::MAX,
            timestamp_like: false,
        }
    }
}

fn len_bit(len: usize) -> u64 {
    1u64 << len.min(63)
}

#[inline]
fn h2(a: u8, b: u8) -> usize {
    (usize::from(a) * 31 + usize::from(b)) & 1023
}

#[inline]
fn bit(set: &[u64], i: usize) -> bool {
    set[i >> 6] & (1 << (i & 63)) != 0
}

impl KeyMatcher {
    /// Adds an entry; returns false when an entry with the same normalised form exists.
    pub(crate) fn insert(&mut self, normalized: Vec<u8>, rule: u16) -> bool {
        match self
            .entries
            .binary_search_by(|(e, _)| e.as_ref().cmp(normalized.as_slice()))
        {
            Ok(_) => false,
            Err(pos) => {
                self.len_mask |= len_bit(normalized.len());
                self.min_len = self.min_len.min(normalized.len());
                // keep only minimal masks: an entry whose byte set contains another
                // entry's passes the filter whenever that one does
                let m = byte_mask(&normalized) & WORD_BITS;
                if !self.masks.iter().any(|&o| o & !m == 0) {
                    let mut kept: Vec<u32> = self
                        .masks
                        .iter()
                        .copied()
                        .filter(|&o| o != u32::MAX && m & !o != 0)
                        .collect();
                    kept.push(m);
                    if kept.len() > MAX_MASKS {
                        kept = vec![0];
                    }
                    kept.resize(MAX_MASKS, u32::MAX);
                    self.masks.copy_from_slice(&kept);
                }
                self.timestamp_like |= normalized.iter().all(|&c| c.is_ascii_digit() || c == b't');
                if !normalized.is_empty() {
                    let h = h3(&normalized);
                    self.shape[h >> 6] |= 1 << (h & 63);
                }
                if normalized.len() >= 2 {
                    let h = h2(normalized[0], normalized[1]);
                    self.first2[h >> 6] |= 1 << (h & 63);
                } else if let Some(&c) = normalized.first() {
                    let c = usize::from(c);
                    self.first1[c >> 6] |= 1 << (c & 63);
                }
                self.entries
                    .insert(pos, (normalized.into_boxed_slice(), rule));
                true
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether some entry (digits and `t` only) could match the words of a timestamp.
    pub(crate) fn timestamp_like(&self) -> bool {
        self.timestamp_like
    }

    /// The rule of the longest entry matching whole consecutive words of `key`.
    pub(crate) fn find(&self, key: &[u8]) -> Option<u16> {
        self.find_with_mask(key, byte_mask(key))
    }

    /// [`find`](Self::find) with the key's [`byte_mask`] already known (the scanner builds
    /// it while looking back for the key start, see [`KEY_SCAN`]).
    #[inline(always)]
    pub(crate) fn find_with_mask(&self, key: &[u8], mask: u32) -> Option<u16> {
        // the normalised key (separators dropped) is never longer than the key itself
        if key.len() < self.min_len || !self.may_contain(mask) {
            return None;
        }
        if mask & !WORD_BITS == LOWER {
            // lower-case ASCII letters only (`tokens`): one word, already normalised
            return self.lookup(key);
        }
        self.find_slow(key)
    }

    /// The part of [`find`](Self::find) after the length and byte-set filters.
    #[inline(never)]
    fn find_slow(&self, key: &[u8]) -> Option<u16> {
        let (&first, rest) = key.split_first()?;
        let first_bits = BYTE_BITS[usize::from(first)];
        let rest_bits = byte_mask(rest);
        // Fast path: letters only, in one case after the first (`tokens`, `Password`,
        // `COOKIE`) is a single word, so the whole lower-cased key is the only window.
        let rest_flags = rest_bits & !WORD_BITS;
        let one_word = first_bits & OTHER == 0
            && (rest_flags == LOWER || rest_flags == 0 || rest_flags & !first_bits == 0);
        if one_word && key.len() <= STACK_KEY {
            // the filters of `lookup` first, on the key as it is (no copy)
            let (len, a, z) = (key.len(), first.to_ascii_lowercase(), key[key.len() - 1]);
            if self.len_mask & len_bit(len) == 0
                || !bit(&self.shape, shape_hash(len, a, z.to_ascii_lowercase()))
            {
                return None;
            }
            let mut buf = [0u8; STACK_KEY];
            let lower = &mut buf[..key.len()];
            lower.copy_from_slice(key);
            lower.make_ascii_lowercase();
            return self.lookup(lower);
        }
        if !self.may_match(key) {
            return None;
        }
        if key.len() <= STACK_KEY {
            let mut buf = [0u8; STACK_KEY];
            let mut bounds = [0u16; STACK_KEY + 1];
            self.find_in(key, &mut buf, &mut bounds)
        } else {
            let mut buf = vec![0u8; key.len()];
            let mut bounds = vec![0u16; key.len() + 1];
            self.find_in(key, &mut buf, &mut bounds)
        }
    }

    /// Does the key's byte set `k` ([`byte_mask`]) contain some entry's byte set? One table
    /// look-up per byte and one AND per distinct entry mask; rejects most keys (`status`,
    /// `duration_ms`, `order_id`, `route`) before any word splitting.
    #[inline]
    fn may_contain(&self, k: u32) -> bool {
        self.masks
            .iter()
            .fold(0u32, |any, &m| any | u32::from(m & !k == 0))
            != 0
    }

    /// The rule of the entry equal to the normalised word window `w`.
    #[inline]
    fn lookup(&self, w: &[u8]) -> Option<u16> {
        if self.len_mask & len_bit(w.len()) == 0 || !bit(&self.shape, h3(w)) {
            return None;
        }
        self.entries
            .binary_search_by(|(e, _)| e.as_ref().cmp(w))
            .ok()
            .map(|i| self.entries[i].1)
    }

    /// Cheap pass without writes: does any word start with bytes some entry starts with?
    fn may_match(&self, key: &[u8]) -> bool {
        let mut prev = Class::Sep;
        for (i, &c) in key.iter().enumerate() {
            let cls = class(c);
            if cls == Class::Sep {
                prev = Class::Sep;
                continue;
            }
            let boundary = match (prev, cls) {
                (Class::Sep, _) | (Class::Lower, Class::Upper) => true,
                (Class::Upper, Class::Upper) => key.get(i + 1).is_some_and(u8::is_ascii_lowercase),
                (Class::Digit, Class::Lower | Class::Upper)
                | (Class::Lower | Class::Upper, Class::Digit) => true,
                _ => false,
            };
            if boundary {
                let a = c.to_ascii_lowercase();
                if bit(&self.first1, usize::from(a)) {
                    return true;
                }
                if let Some(&n) = key[i + 1..].iter().find(|&&n| class(n) != Class::Sep) {
                    if bit(&self.first2, h2(a, n.to_ascii_lowercase())) {
                        return true;
                    }
                }
            }
            prev = cls;
        }
        false
    }

    fn find_in(&self, key: &[u8], buf: &mut [u8], bounds: &mut [u16]) -> Option<u16> {
        let words = split(key, buf, bounds);
        let mut best: Option<(usize, u16)> = None;
        let total = usize::from(bounds[words]);
        for w in 0..words {
            let start = usize::from(bounds[w]);
            // every window starting at word `w` shares its first two bytes
            let two = start + 1 < total && bit(&self.first2, h2(buf[start], buf[start + 1]));
            let one = bit(&self.first1, usize::from(buf[start]));
            if !two && !one {
                continue;
            }
            for &end in &bounds[w + 1..=(w + MAX_WINDOW).min(words)] {
                let end = usize::from(end);
                let len = end - start;
                if len >= 2 && !two {
                    break;
                }
                if self.len_mask & len_bit(len) == 0 {
                    continue;
                }
                if let Some(rule) = self.lookup(&buf[start..end]) {
                    if best.is_none_or(|(l, _)| len > l) {
                        best = Some((len, rule));
                    }
                }
            }
        }
        best.map(|(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(key: &str) -> Vec<String> {
        let k = key.as_bytes();
        let mut buf = vec![0u8; k.len()];
        let mut bounds = vec![0u16; k.len() + 1];
        let n = split(k, &mut buf, &mut bounds);
        (0..n)
            .map(|w| {
                String::from_utf8(buf[usize::from(bounds[w])..usize::from(bounds[w + 1])].to_vec())
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn splitting() {
        assert_eq!(words("authToken"), ["auth", "token"]);
        assert_eq!(words("APIKey"), ["api", "key"]);
        assert_eq!(words("x-auth-token"), ["x", "auth", "token"]);
        assert_eq!(words("user.password_hash"), ["user", "password", "hash"]);
        assert_eq!(words("token2"), ["token", "2"]);
        assert_eq!(words("MYSQL_PWD"), ["mysql", "pwd"]);
        assert_eq!(words("__"), Vec::<String>::new());
    }

    fn matcher(entries: &[&str]) -> KeyMatcher {
        let mut m = KeyMatcher::default();
        for (i, e) in entries.iter().enumerate() {
            m.insert(normalize(e), i as u16);
        }
        m
    }

    #[test]
    fn whole_words_only() {
        let m = matcher(&["auth", "api_key", "token", "session_id"]);
        assert_eq!(m.find(b"auth"), Some(0));
        assert_eq!(m.find(b"x-auth-token"), Some(2));
        assert_eq!(m.find(b"author"), None);
        assert_eq!(m.find(b"authenticated"), None);
        assert_eq!(m.find(b"apiKey"), Some(1));
        assert_eq!(m.find(b"APIKEY"), Some(1));
        assert_eq!(m.find(b"x-api-key"), Some(1));
        assert_eq!(m.find(b"tokens"), None);
        assert_eq!(m.find(b"sessionid"), Some(3));
        assert_eq!(m.find(b"Accept"), None);
        let long = format!("{}_token", "x".repeat(300));
        assert_eq!(m.find(long.as_bytes()), Some(2));
    }
}

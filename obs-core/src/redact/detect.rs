//! The one-pass scanner: a 256-entry trigger table picks the few bytes where a detector can
//! start (`@`, digits at a word start, `:`, `=`, `-`, `_`, `J` of `eyJ`, `A` of `AKIA`, `b` of
//! `bearer`, `[` of our own markers, ...). The text is classified once, 64 bytes at a time,
//! into a bit mask of candidates (a fixed superset of every configuration's trigger bytes,
//! [`candidate`], tested with comparisons that compile to 16-byte vector compares); the
//! scanner goes from one candidate to the next with `trailing_zeros`, checks the trigger
//! table there, and only then does a small hand-written validator run on a bounded window,
//! behind a pre-check of the shapes it needs (digit run length and the bytes around it, the
//! bytes before a `_` or `-`), which rejects exactly what the validator would. ISO-8601
//! timestamps are skipped in one step ([`timestamp_end`]); a rejected digit run is skipped
//! whole, with any `.digits` after it. Every validator is linear in the bytes it looks at,
//! and a rejected candidate never makes the scanner go back, so the whole scan is O(n) with
//! a small constant on any input.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::checks;
use super::keys::{KeyMatcher, KEY_SCAN, NOT_KEY};

/// Built-in value detectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Det {
    Email,
    Card,
    Iban,
    Ip,
    Jwt,
    Bearer,
    BasicAuth,
    UrlAuth,
    PemKey,
    AwsKey,
    GithubToken,
    StripeKey,
    SlackToken,
    GitlabToken,
    NpmToken,
    Ssn,
    Phone,
    Uuid,
    Imei,
    Mac,
}

/// Number of built-in detectors.
pub(crate) const N_DET: usize = 20;

/// (detector, rule id, on by default).
pub(crate) const DETECTORS: [(Det, &str, bool); N_DET] = [
    (Det::Email, "email", true),
    (Det::Card, "card", true),
    (Det::Iban, "iban", true),
    (Det::Ip, "ip", true),
    (Det::Jwt, "jwt", true),
    (Det::Bearer, "bearer", true),
    (Det::BasicAuth, "basic_auth", true),
    (Det::UrlAuth, "url_auth", true),
    (Det::PemKey, "pem_key", true),
    (Det::AwsKey, "aws_key", true),
    (Det::GithubToken, "github_token", true),
    (Det::StripeKey, "stripe_key", true),
    (Det::SlackToken, "slack_token", true),
    (Det::GitlabToken, "gitlab_token", true),
    (Det::NpmToken, "npm_token", true),
    (Det::Ssn, "ssn", true),
    (Det::Phone, "phone", false),
    (Det::Uuid, "uuid", false),
    (Det::Imei, "imei", false),
    (Det::Mac, "mac", false),
];

/// What produced a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HitKind {
    Detector,
    KeyValue,
    Custom,
}

/// A span to scrub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) rule: u16,
    pub(crate) kind: HitKind,
    /// Start of the whole `key=value` pair (== `start` for other kinds).
    pub(crate) pair_start: usize,
}

/// Per-call context.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ctx {
    /// The text is the value of a key naming a version (`version`, `app_version`): dotted
    /// quads are version numbers, not IPv4 addresses.
    pub(crate) version_hint: bool,
}

/// The compiled scanner.
#[derive(Debug, Clone)]
pub(crate) struct Scanner {
    det: [Option<u16>; N_DET],
    trig: [bool; 256],
    pub(crate) keys: KeyMatcher,
    /// Rule indices whose free-text value runs to the end of the line (cookies).
    to_eol: Vec<u16>,
    /// Sorted rule ids, to recognise our own markers (`[email]`, `[token:v1:0123...]`).
    marker_ids: Vec<Box<[u8]>>,
    /// ISO-8601 timestamps are skipped in one step (see [`timestamp_end`]); off when a key
    /// entry could match a timestamp's words.
    ts_skip: bool,
}

#[inline]
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

#[inline]
fn alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

#[inline]
fn word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

#[inline]
fn hexd(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

#[inline]
fn b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Byte before `i` (0 at the start).
#[inline]
fn before(b: &[u8], i: usize) -> u8 {
    // `i - 1` wraps to `usize::MAX` at 0: one bounds check, no branch
    b.get(i.wrapping_sub(1)).copied().unwrap_or(0)
}

fn run(b: &[u8], from: usize, max: usize, f: impl Fn(u8) -> bool) -> usize {
    let mut j = from;
    let lim = b.len().min(from.saturating_add(max));
    while j < lim && f(b[j]) {
        j += 1;
    }
    j
}

/// The bytes of an in-text key: `[A-Za-z0-9_.-]`.
/// A byte of an in-text key (`[A-Za-z0-9_.-]`).
#[inline]
fn key_byte(c: u8) -> bool {
    KEY_SCAN[usize::from(c)] & NOT_KEY == 0
}

/// Per byte of `v` (eight bytes, little-endian): zero for an ASCII digit, non-zero otherwise
/// (the high nibble is not 3, or the low nibble is above 9: adding 6 carries into the high
/// nibble).
#[inline(always)]
fn non_digit_bits(v: u64) -> u64 {
    const LO: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    const HI: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    ((v & HI) ^ 0x3030_3030_3030_3030) | (((v & LO) + 0x0606_0606_0606_0606) & HI)
}

/// End of the run of ASCII digits starting at `i`: eight bytes per step (SWAR on a `u64`),
/// so a run costs no branch per digit.
#[inline]
fn digit_run_end(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let bad = non_digit_bits(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
        // high bit of every non-zero byte (no carry crosses a byte: 0x7f + 0x7f < 0x100)
        let nz =
            (((bad & 0x7f7f_7f7f_7f7f_7f7f) + 0x7f7f_7f7f_7f7f_7f7f) | bad) & 0x8080_8080_8080_8080;
        if nz != 0 {
            return i + (nz.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// End of an ISO-8601 / RFC 3339 date or timestamp starting at `s` (`2024-01-15`,
/// `2024-01-15T10:30`, `2024-01-15 10:30:00.123456Z`, `2026-11-22T03:54:13+01:00`), when the
/// byte after it ends a token (whitespace, a quote, one of `, ; ) ] } | & < > \`, the end).
///
/// The scanner jumps over such a timestamp in one step instead of visiting its ~12 trigger
/// bytes (digit runs, `-`, `:`, `+`). That is exact, not a heuristic: with the timestamp
/// preceded by a byte that cannot continue a key, no detector can start inside it (no run of
/// 3+ digits but the year and a fraction after `.`, no 8 hex digits before a `-`, an
/// IPv6 candidate of at most 3 groups, `+hh:mm` far from 8 phone digits), and every in-text
/// key before one of its `:` consists of digits and `t` only, which no key entry matches
/// (the fast path is off otherwise, see [`KeyMatcher::timestamp_like`]). The terminator
/// check keeps anything that could extend a candidate past the end (`:`, `.`, `@`, `-`,
/// word bytes) on the slow path.
fn timestamp_end(b: &[u8], s: usize) -> Option<usize> {
    let d = |k: usize| at(b, k).is_ascii_digit();
    let mut e;
    if b.get(s..s + 19).is_some_and(date_time_shape) {
        // the common case, checked in a few word operations
        e = zone_end(b, fraction_end(b, s + 19)?);
    } else {
        let date = d(s)
            && d(s + 1)
            && d(s + 2)
            && d(s + 3)
            && at(b, s + 4) == b'-'
            && d(s + 5)
            && d(s + 6)
            && at(b, s + 7) == b'-'
            && d(s + 8)
            && d(s + 9);
        if !date {
            return None;
        }
        e = s + 10;
        if matches!(at(b, e), b'T' | b' ') && d(e + 1) && d(e + 2) && at(b, e + 3) == b':' {
            if !(d(e + 4) && d(e + 5)) {
                return None;
            }
            e += 6;
            if at(b, e) == b':' {
                if !(d(e + 1) && d(e + 2)) {
                    return None;
                }
                e = fraction_end(b, e + 3)?;
            }
            e = zone_end(b, e);
        }
    }
    let ends = e == b.len()
        || matches!(
            b[e],
            b' ' | b'\t'
                | b'\n'
                | b'\r'
                | b'"'
                | b'\''
                | b','
                | b';'
                | b')'
                | b']'
                | b'}'
                | b'|'
                | b'&'
                | b'<'
                | b'>'
                | b'\\'
        );
    ends.then_some(e)
}

/// `dddd-dd-ddTdd:dd:dd` (or a space for the `T`), the 19 bytes of `w`.
fn date_time_shape(w: &[u8]) -> bool {
    // the bytes under `mask` are ASCII digits
    let digits = |x: u64, mask: u64| non_digit_bits(x) & mask == 0;
    let word = |k: usize| u64::from_le_bytes(w[k..k + 8].try_into().expect("eight bytes"));
    // bytes 0-7 `dddd-dd-`, 8-15 `ddTdd:dd`, 11-18 `dd:dd:dd` (little-endian: byte 0 lowest)
    let (a, c, f) = (word(0), word(8), word(11));
    let dd = 0x00ff_ff00_ffff_ffff;
    digits(a, dd)
        && a & !dd == 0x2d00_0000_2d00_0000
        && digits(c, 0x0000_0000_0000_ffff)
        && matches!(w[10], b'T' | b' ')
        && digits(f, 0xffff_00ff_ff00_ffff)
        && f & 0x0000_ff00_00ff_0000 == 0x0000_3a00_003a_0000
}

/// After the seconds of a timestamp: the end of a `.` fraction of up to 9 digits (`None`
/// for a longer one), or `e`. Only a `.` fraction: after `,` a digit run starts a card/SSN
/// candidate.
fn fraction_end(b: &[u8], e: usize) -> Option<usize> {
    if at(b, e) == b'.' && at(b, e + 1).is_ascii_digit() {
        let f = digit_run_end(b, e + 1);
        if f - (e + 1) > 9 {
            return None;
        }
        return Some(f);
    }
    Some(e)
}

/// After the time of a timestamp: the end of a `Z`, `+hh:mm`, `-hhmm` or `+hh` zone, or `e`.
fn zone_end(b: &[u8], mut e: usize) -> usize {
    let d = |k: usize| at(b, k).is_ascii_digit();
    match at(b, e) {
        b'Z' | b'z' => e += 1,
        b'+' | b'-' if d(e + 1) && d(e + 2) => {
            e += 3;
            if at(b, e) == b':' && d(e + 1) && d(e + 2) {
                e += 3;
            } else if d(e) && d(e + 1) {
                e += 2;
            }
        }
        _ => {}
    }
    e
}

/// A fixed superset of every configuration's trigger bytes (`%`..`=`, which holds the
/// digits, `-`, `:` and `=`; `@AB`; `J`, `[`, `_`, `b`), in a few range and equality tests
/// that vectorise: the scan classifies 64 bytes at a time with it, then checks the exact
/// trigger table at each candidate (the false ones are rare: `.`, `/`, `,`, `&`, `'`, ...).
#[inline(always)]
fn candidate(c: u8) -> bool {
    c.wrapping_sub(b'%') <= b'=' - b'%'
        || c.wrapping_sub(b'@') <= b'B' - b'@'
        || c == b'J'
        || c == b'['
        || c == b'_'
        || c == b'b'
}

const VERSION_WORDS: &[&[u8]] = &[b"version", b"ver", b"release", b"build", b"firmware"];
/// [`VERSION_WORDS`] as little-endian integers with their lengths (all at most 8 bytes).
const VERSION_WORDS_LE: [(u64, usize); 5] = {
    let mut t = [(0u64, 0usize); 5];
    let mut w = 0;
    while w < 5 {
        let word = VERSION_WORDS[w];
        let mut v = 0u64;
        let mut k = word.len();
        while k > 0 {
            k -= 1;
            v = v << 8 | word[k] as u64;
        }
        t[w] = (v, word.len());
        w += 1;
    }
    t
};
const SCHEMES: &[&[u8]] = &[b"bearer", b"basic", b"token", b"negotiate", b"ntlm"];

impl Scanner {
    pub(crate) fn new(
        det: [Option<u16>; N_DET],
        keys: KeyMatcher,
        to_eol: Vec<u16>,
        mut marker_ids: Vec<Box<[u8]>>,
    ) -> Self {
        marker_ids.sort();
        let mut trig = [false; 256];
        let on = |d: Det| det[d as usize].is_some();
        let mut set = |bytes: &[u8]| {
            for &c in bytes {
                trig[usize::from(c)] = true;
            }
        };
        set(b"[");
        if on(Det::Card)
            || on(Det::Ip)
            || on(Det::Ssn)
            || on(Det::Iban)
            || on(Det::Phone)
            || on(Det::Imei)
        {
            set(b"0123456789");
        }
        if on(Det::Email) {
            set(b"@%");
        }
        if !keys.is_empty() {
            set(b"=:");
        }
        if on(Det::UrlAuth) || on(Det::Ip) || on(Det::Mac) {
            set(b":");
        }
        if on(Det::PemKey)
            || on(Det::SlackToken)
            || on(Det::GitlabToken)
            || on(Det::Uuid)
            || on(Det::Mac)
        {
            set(b"-");
        }
        if on(Det::GithubToken) || on(Det::StripeKey) || on(Det::NpmToken) {
            set(b"_");
        }
        if on(Det::Jwt) {
            set(b"J");
        }
        if on(Det::AwsKey) {
            set(b"A");
        }
        if on(Det::Bearer) || on(Det::BasicAuth) {
            set(b"bB");
        }
        if on(Det::Phone) {
            set(b"+(");
        }
        let ts_skip = !keys.timestamp_like();
        debug_assert!(
            (0..=255u8).all(|c| !trig[usize::from(c)] || candidate(c)),
            "every trigger byte is a candidate"
        );
        Self {
            det,
            trig,
            keys,
            to_eol,
            marker_ids,
            ts_skip,
        }
    }

    #[inline]
    fn rule(&self, d: Det) -> Option<u16> {
        self.det[d as usize]
    }

    fn hit(&self, d: Det, start: usize, end: usize) -> Option<Hit> {
        self.rule(d).map(|rule| Hit {
            start,
            end,
            rule,
            kind: HitKind::Detector,
            pair_start: start,
        })
    }

    /// Scans `b`, appending non-overlapping hits in order.
    pub(crate) fn scan(&self, b: &[u8], ctx: Ctx, hits: &mut Vec<Hit>) {
        let n = b.len();
        let mut i = 0usize;
        let mut covered = 0usize;
        let mut v6_until = 0usize;
        // trigger bits of the aligned 64-byte block `b[blk..blk + 64]`; `i` only moves
        // forward, so every block is classified at most once, and the next trigger is a
        // `trailing_zeros` away instead of a data-dependent branch per step
        let mut blk = usize::MAX;
        let mut bits = 0u64;
        loop {
            let base = i & !63;
            if base != blk {
                if i >= n {
                    break;
                }
                blk = base;
                bits = self.block_bits(b, base);
            }
            let rest = bits & (u64::MAX << (i - base));
            if rest == 0 {
                i = base + 64;
                if i >= n {
                    break;
                }
                continue;
            }
            i = base + rest.trailing_zeros() as usize;
            let c = b[i];
            if !self.trig[usize::from(c)] {
                i += 1;
                continue;
            }
            let found = match c {
                b'0'..=b'9' => {
                    if self.ts_skip && at(b, i + 4) == b'-' && !key_byte(before(b, i)) {
                        if let Some(e) = timestamp_end(b, i) {
                            // no detector can match inside (or start in) a timestamp
                            i = e;
                            continue;
                        }
                    }
                    let r = digit_run_end(b, i);
                    match self.at_digit(b, i, r, covered, ctx) {
                        Some(h) if h.start >= covered && h.end > h.start => Some(h),
                        _ => {
                            // No match starts in the rest of the run, nor in a digit run
                            // right after a `.` (`1.2.3.4` that is no IP, decimals): those
                            // are rejected at once (`.` before them), so skip them too.
                            i = r;
                            while at(b, i) == b'.' && at(b, i + 1).is_ascii_digit() {
                                i = digit_run_end(b, i + 1);
                            }
                            continue;
                        }
                    }
                }
                b'@' => self.email(b, i, i + 1, covered),
                b'%' if at(b, i + 1) == b'4' && at(b, i + 2) == b'0' => {
                    self.email(b, i, i + 3, covered)
                }
                b':' => self.at_colon(b, i, covered, &mut v6_until),
                b'=' => self.key_value(b, i, covered),
                b'-' => self.at_dash(b, i, covered),
                b'_' => self.at_underscore(b, i, covered),
                b'J' => self.jwt(b, i, covered),
                b'A' => self.aws(b, i),
                b'b' | b'B' => self.auth_scheme(b, i),
                b'+' | b'(' => self.phone(b, i),
                b'[' => {
                    if let Some(end) = self.marker(b, i) {
                        i = end;
                        covered = covered.max(end);
                        continue;
                    }
                    None
                }
                _ => None,
            };
            match found {
                Some(h) if h.start >= covered && h.end > h.start => {
                    debug_assert!(h.end <= n);
                    hits.push(h);
                    covered = h.end;
                    i = h.end.max(i + 1);
                }
                _ => i += 1,
            }
        }
    }

    /// Bit `k` set when `b[base + k]` is a trigger byte, for the (up to) 64 bytes from
    /// `base`.
    #[inline]
    fn block_bits(&self, b: &[u8], base: usize) -> u64 {
        let Some(chunk) = b.get(base..base + 64) else {
            let t = &self.trig;
            return b[base..]
                .iter()
                .enumerate()
                .fold(0, |m, (k, &c)| m | u64::from(t[usize::from(c)]) << k);
        };
        // candidates one 0/1 byte per input byte, in a fixed-size loop of comparisons that
        // compiles to 16-byte vector compares; the scan checks the exact table at each one
        let mut hit = [0u8; 64];
        for (h, &c) in hit.iter_mut().zip(chunk) {
            *h = u8::from(candidate(c));
        }
        let mut m = 0u64;
        for (q, w) in hit.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes(w.try_into().expect("eight bytes"));
            // byte k (0 or 1) lands on bit 56 + k; no two partial products share a bit
            m |= (w.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * q);
        }
        m
    }

    /// Length of our marker at the start of `b`, if `b` starts with one.
    pub(crate) fn marker_len(&self, b: &[u8]) -> Option<usize> {
        if b.first() == Some(&b'[') {
            self.marker(b, 0)
        } else {
            None
        }
    }

    /// Our own output (`[email]`, `[password:v1:0123456789abcdef]`): skipped, so scrubbing
    /// is idempotent. Only ids of configured rules are recognised.
    fn marker(&self, b: &[u8], i: usize) -> Option<usize> {
        let id_end = run(b, i + 1, 48, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'.')
        });
        let id = &b[i + 1..id_end];
        if id.is_empty()
            || self
                .marker_ids
                .binary_search_by(|m| m.as_ref().cmp(id))
                .is_err()
        {
            return None;
        }
        match at(b, id_end) {
            b']' => Some(id_end + 1),
            b':' if at(b, id_end + 1) == b'v' => {
                let v_end = run(b, id_end + 2, 10, |c| c.is_ascii_digit());
                if v_end == id_end + 2 || at(b, v_end) != b':' {
                    return None;
                }
                let h_end = run(b, v_end + 1, 64, |c| {
                    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
                });
                (h_end > v_end + 1 && at(b, h_end) == b']').then_some(h_end + 1)
            }
            _ => None,
        }
    }

    // ---------------------------------------------------------------- digits

    /// A detector match starting at the digit run `b[i..r]`.
    #[inline]
    fn at_digit(&self, b: &[u8], i: usize, r: usize, covered: usize, ctx: Ctx) -> Option<Hit> {
        let p = before(b, i);
        if p.is_ascii_digit() {
            return None;
        }
        if p.is_ascii_alphabetic() {
            // IBAN: two letters at a word start, then two check digits.
            if self.rule(Det::Iban).is_some()
                && i >= 2
                && i - 2 >= covered
                && b[i - 2].is_ascii_alphabetic()
                && at(b, i + 1).is_ascii_digit()
                && !alnum(before(b, i - 2))
            {
                return self.iban(b, i - 2);
            }
            return None;
        }
        if p == b'_' || p == b'.' {
            return None;
        }
        // cheap dispatch on the shape of the digit run before any validator runs
        let r = r.min(i + 20);
        let len = r - i;
        let next = at(b, r);
        let next_digit = at(b, r + 1).is_ascii_digit();
        // every validator needs one of these shapes; most numbers in logs (`200 `, `1234\n`,
        // an epoch in millis) have none, and are done with here
        // (the card network test only for long runs: on a random first digit it is
        // unpredictable, the length test is not)
        if !(len == 9
            || ((13..20).contains(&len)
                && (matches!(b[i], b'2'..=b'6') || self.rule(Det::Imei).is_some()))
            || (matches!(next, b'-' | b' ' | b'.') && next_digit))
        {
            return None;
        }
        self.digit_shapes(b, i, r, next, next_digit, ctx)
    }

    /// The validators of [`at_digit`](Self::at_digit) for a digit run `b[i..r]` (at most
    /// 20 digits) followed by `next` and a digit after it or not.
    #[inline(never)]
    fn digit_shapes(
        &self,
        b: &[u8],
        i: usize,
        r: usize,
        next: u8,
        next_digit: bool,
        ctx: Ctx,
    ) -> Option<Hit> {
        let len = r - i;
        if self.rule(Det::Ssn).is_some()
            && ((len == 3 && (next == b'-' || next == b' ') && next_digit) || len == 9)
        {
            if let Some(h) = self.ssn(b, i) {
                return Some(h);
            }
        }
        if self.rule(Det::Ip).is_some() && len <= 3 && next == b'.' && next_digit {
            if let Some(h) = self.ipv4(b, i, ctx) {
                return Some(h);
            }
        }
        // card networks start with 2-6; IMEIs with anything
        let card_first = matches!(b[i], b'2'..=b'6') || self.rule(Det::Imei).is_some();
        if card_first
            && (self.rule(Det::Card).is_some() || self.rule(Det::Imei).is_some())
            && ((13..20).contains(&len)
                || (len >= 3
                    && (next == b' ' || next == b'-')
                    && next_digit
                    && at(b, r + 2).is_ascii_digit()
                    && at(b, r + 3).is_ascii_digit()))
        {
            if let Some(h) = self.card(b, i) {
                return Some(h);
            }
        }
        if self.rule(Det::Phone).is_some() && len == 3 && (next == b'-' || next == b'.') {
            if let Some(h) = self.phone_us(b, i) {
                return Some(h);
            }
        }
        None
    }

    /// Cards: 13-19 digits, optionally grouped by one kind of separator (space or dash; every
    /// group but the last has at least 3 digits), a known network prefix and a valid Luhn
    /// checksum. A longer grouped run is tried at its group boundaries.
    fn card(&self, b: &[u8], s: usize) -> Option<Hit> {
        let n = b.len();
        let mut digits = [0u8; 19];
        let mut nd = 0usize;
        let mut j = s;
        let mut sep: Option<u8> = None;
        // (end index, digit count) at each group end
        let mut groups: [(usize, usize); 8] = [(0, 0); 8];
        let mut ng = 0usize;
        let mut too_long = false;
        loop {
            let gstart = nd;
            while j < n && b[j].is_ascii_digit() {
                if nd == 19 {
                    too_long = true;
                    break;
                }
                digits[nd] = b[j] - b'0';
                nd += 1;
                j += 1;
            }
            if too_long {
                break;
            }
            let glen = nd - gstart;
            groups[ng] = (j, nd);
            ng += 1;
            let c = at(b, j);
            if ng < 8
                && (c == b' ' || c == b'-')
                && at(b, j + 1).is_ascii_digit()
                && sep.is_none_or(|s| s == c)
                && glen >= 3
            {
                sep = Some(c);
                j += 1;
                continue;
            }
            break;
        }
        let boundary_ok = |e: usize| {
            let c = at(b, e);
            !(word(c) || (c == b'.' && at(b, e + 1).is_ascii_digit()))
        };
        let check = |end: usize, count: usize, full: bool| -> Option<Hit> {
            if full && !boundary_ok(end) {
                return None;
            }
            let d = &digits[..count];
            if !(13..=19).contains(&count) || !checks::luhn(d) {
                return None;
            }
            if self.rule(Det::Card).is_some() && checks::card_vendor(d) {
                return self.hit(Det::Card, s, end);
            }
            if count == 15 && sep.is_none() && self.rule(Det::Imei).is_some() {
                return self.hit(Det::Imei, s, end);
            }
            None
        };
        if !too_long {
            let (end, count) = groups[ng - 1];
            if let Some(h) = check(end, count, true) {
                return Some(h);
            }
            if ng == 1 {
                return None;
            }
            // fall through: a prefix of groups might be a card followed by more numbers
            for g in (0..ng - 1).rev() {
                let (end, count) = groups[g];
                if let Some(h) = check(end, count, false) {
                    return Some(h);
                }
            }
            return None;
        }
        sep?;
        for g in (0..ng).rev() {
            let (end, count) = groups[g];
            if let Some(h) = check(end, count, false) {
                return Some(h);
            }
        }
        None
    }

    /// US SSN: `AAA-GG-SSSS` with valid ranges; bare nine digits (or spaced) only right after
    /// the word `ssn` (within 16 bytes).
    fn ssn(&self, b: &[u8], s: usize) -> Option<Hit> {
        let d = |k: usize| at(b, s + k).is_ascii_digit();
        let num = |from: usize, len: usize| {
            b[s + from..s + from + len]
                .iter()
                .fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'))
        };
        let (end, area, group, serial, sep) = if d(0) && d(1) && d(2) {
            let c3 = at(b, s + 3);
            if (c3 == b'-' || c3 == b' ')
                && d(4)
                && d(5)
                && at(b, s + 6) == c3
                && d(7)
                && d(8)
                && d(9)
                && d(10)
            {
                (s + 11, num(0, 3), num(4, 2), num(7, 4), Some(c3))
            } else if (3..9).all(d) {
                (s + 9, num(0, 3), num(3, 2), num(5, 4), None)
            } else {
                return None;
            }
        } else {
            return None;
        };
        let e = at(b, end);
        if word(e) || ((e == b'-' || e == b'.') && at(b, end + 1).is_ascii_digit()) {
            return None;
        }
        if before(b, s) == b'-' {
            return None;
        }
        if !checks::ssn_valid(area, group, serial) {
            return None;
        }
        if sep != Some(b'-') {
            // bare / spaced form needs the word "ssn" just before
            let from = s.saturating_sub(16);
            let ctx = &b[from..s];
            if !ctx.windows(3).any(|w| w.eq_ignore_ascii_case(b"ssn")) {
                return None;
            }
        }
        self.hit(Det::Ssn, s, end)
    }

    /// IPv4 dotted quad parsed by `std`; not after a version word (`version 1.2.3.4`,
    /// `build: 10.0.0.1`) nor in a value whose key names a version.
    fn ipv4(&self, b: &[u8], s: usize, ctx: Ctx) -> Option<Hit> {
        // first the cheapest check that turns away the common dotted quad of logs
        if ctx.version_hint || self.version_before(b, s) {
            return None;
        }
        let mut e = run(b, s, 16, |c| c.is_ascii_digit() || c == b'.');
        if at(b, e.wrapping_sub(1)) == b'.' {
            e -= 1;
        }
        let cand = &b[s..e];
        if cand.iter().filter(|&&c| c == b'.').count() != 3 {
            return None;
        }
        let next = at(b, e);
        if word(next) || (next == b'.' && at(b, e + 1).is_ascii_digit()) {
            return None;
        }
        let text = std::str::from_utf8(cand).ok()?;
        text.parse::<Ipv4Addr>().ok()?;
        self.hit(Det::Ip, s, e)
    }

    fn version_before(&self, b: &[u8], s: usize) -> bool {
        let mut j = s;
        let mut skipped = 0;
        while j > 0 && skipped < 4 && matches!(b[j - 1], b' ' | b':' | b'=' | b'"' | b'\'' | b'\t')
        {
            j -= 1;
            skipped += 1;
        }
        if j >= 8 {
            // the last eight bytes, ASCII letters lower-cased (`| 0x20` turns no other byte
            // into a letter): a version word is a suffix of them
            let last = u64::from_le_bytes(b[j - 8..j].try_into().expect("eight bytes"))
                | 0x2020_2020_2020_2020;
            return VERSION_WORDS_LE.iter().any(|&(v, len)| {
                if last >> (8 * (8 - len)) != v {
                    return false;
                }
                // the whole last word, or its camelCase tail (`appVersion`)
                let p = j - len;
                p == 0
                    || !b[p - 1].is_ascii_alphabetic()
                    || (b[p].is_ascii_uppercase() && b[p - 1].is_ascii_lowercase())
            });
        }
        let mut k = j;
        while k > 0 && j - k < 16 && b[k - 1].is_ascii_alphabetic() {
            k -= 1;
        }
        // take the last word only (`app_version`, `appVersion`)
        let w = &b[k..j];
        VERSION_WORDS.iter().any(|v| {
            if w.eq_ignore_ascii_case(v) {
                return true;
            }
            // camelCase tail: `appVersion`
            let n = w.len();
            n > v.len()
                && w[n - v.len()].is_ascii_uppercase()
                && w[n - v.len() - 1].is_ascii_lowercase()
                && w[n - v.len()..].eq_ignore_ascii_case(v)
        })
    }

    /// IBAN: country code with a registered length, two check digits, alphanumeric BBAN
    /// (optionally in groups of four separated by single spaces), mod-97 valid.
    fn iban(&self, b: &[u8], s: usize) -> Option<Hit> {
        if alnum(before(b, s)) || !at(b, s + 3).is_ascii_digit() {
            return None;
        }
        let cc = [
            at(b, s).to_ascii_uppercase(),
            at(b, s + 1).to_ascii_uppercase(),
        ];
        let len = checks::iban_length(cc)?;
        let mut buf = [0u8; 34];
        let mut count = 0usize;
        let mut j = s;
        while count < len {
            let c = at(b, j);
            if alnum(c) {
                buf[count] = c.to_ascii_uppercase();
                count += 1;
                j += 1;
            } else if c == b' ' && count.is_multiple_of(4) && count > 0 && alnum(at(b, j + 1)) {
                j += 1;
            } else {
                return None;
            }
        }
        if alnum(at(b, j)) {
            return None;
        }
        checks::iban_mod97(&buf[..len]).then(|| self.hit(Det::Iban, s, j))?
    }

    /// US-style phone numbers `555-123-4567` / `555.123.4567` (rule `phone`, off by default).
    fn phone_us(&self, b: &[u8], s: usize) -> Option<Hit> {
        let d = |k: usize| at(b, s + k).is_ascii_digit();
        let sep = at(b, s + 3);
        if (sep == b'-' || sep == b'.')
            && (0..3).all(d)
            && (4..7).all(d)
            && at(b, s + 7) == sep
            && (8..12).all(d)
            && !word(at(b, s + 12))
        {
            return self.hit(Det::Phone, s, s + 12);
        }
        None
    }

    /// `+<country> ...` (8-15 digits with spaces, dashes, dots, parentheses) or
    /// `(555) 123-4567` (rule `phone`, off by default).
    #[inline(never)]
    fn phone(&self, b: &[u8], i: usize) -> Option<Hit> {
        if word(before(b, i)) {
            return None;
        }
        let mut j = i + 1;
        let mut nd = 0;
        let mut last_digit_end = j;
        while j < b.len() && j - i < 24 {
            let c = b[j];
            if c.is_ascii_digit() {
                nd += 1;
                j += 1;
                last_digit_end = j;
            } else if matches!(c, b' ' | b'-' | b'.' | b'(' | b')') && at(b, j + 1) != c {
                j += 1;
            } else {
                break;
            }
        }
        if word(at(b, last_digit_end)) {
            return None;
        }
        let ok = if b[i] == b'+' {
            at(b, i + 1).is_ascii_digit() && (8..=15).contains(&nd)
        } else {
            nd == 10 && at(b, i + 4) == b')'
        };
        if ok {
            self.hit(Det::Phone, i, last_digit_end)
        } else {
            None
        }
    }

    // ---------------------------------------------------------------- email

    /// Email: local part of `[A-Za-z0-9._%+-]` (max 64), a domain with at least one dot and an
    /// alphabetic TLD of 2+ letters. `user@localhost` and `@scope/pkg` are not emails. The
    /// `@` may be percent-encoded (`jane%40example.com` in a query string); `dom` is where
    /// the domain starts.
    #[inline(never)]
    fn email(&self, b: &[u8], i: usize, dom: usize, covered: usize) -> Option<Hit> {
        self.rule(Det::Email)?;
        let mut s = i;
        let floor = covered.max(i.saturating_sub(64));
        while s > floor && (alnum(b[s - 1]) || matches!(b[s - 1], b'.' | b'_' | b'%' | b'+' | b'-'))
        {
            s -= 1;
        }
        while s < i && b[s] == b'.' {
            s += 1;
        }
        if s == i || b[i - 1] == b'.' {
            return None;
        }
        let mut e = run(b, dom, 255, |c| alnum(c) || c == b'-' || c == b'.');
        while e > dom && matches!(b[e - 1], b'.' | b'-') {
            e -= 1;
        }
        let domain = &b[dom..e];
        if domain.is_empty() || domain[0] == b'-' || domain[0] == b'.' {
            return None;
        }
        let last_dot = domain.iter().rposition(|&c| c == b'.')?;
        let tld = &domain[last_dot + 1..];
        if tld.len() < 2
            || !tld.iter().all(u8::is_ascii_alphabetic)
            || domain.windows(2).any(|w| w == b"..")
        {
            return None;
        }
        if word(at(b, e)) {
            return None;
        }
        self.hit(Det::Email, s, e)
    }

    // ---------------------------------------------------------------- ':' and '='

    fn at_colon(&self, b: &[u8], i: usize, covered: usize, v6_until: &mut usize) -> Option<Hit> {
        if at(b, i + 1) == b'/' && at(b, i + 2) == b'/' {
            return self.url_auth(b, i);
        }
        if !self.keys.is_empty() {
            if let Some(h) = self.key_value(b, i, covered) {
                return Some(h);
            }
        }
        if self.rule(Det::Mac).is_some() {
            if let Some(h) = self.mac(b, i, covered) {
                return Some(h);
            }
        }
        if self.rule(Det::Ip).is_some() && i >= *v6_until {
            let ok = |c: u8| hexd(c) || c == b':' || c == b'.';
            if !ok(before(b, i)) && !ok(at(b, i + 1)) {
                // a lone `:` (`tokens: 12`): what `ipv6` would conclude, without the call
                *v6_until = i + 1;
                return None;
            }
            return self.ipv6(b, i, covered, v6_until);
        }
        None
    }

    /// `scheme://user:pass@host`: the `user:pass` part (only when it has a `:`).
    #[inline(never)]
    fn url_auth(&self, b: &[u8], i: usize) -> Option<Hit> {
        self.rule(Det::UrlAuth)?;
        if !before(b, i).is_ascii_alphanumeric() {
            return None;
        }
        let s = i + 3;
        let e = run(b, s, 512, |c| {
            !matches!(
                c,
                b'/' | b'?'
                    | b'#'
                    | b' '
                    | b'\t'
                    | b'\n'
                    | b'\r'
                    | b'"'
                    | b'\''
                    | b'<'
                    | b'>'
                    | b'\\'
            )
        });
        let at_pos = b[s..e].iter().rposition(|&c| c == b'@')? + s;
        let userinfo = &b[s..at_pos];
        if userinfo.len() < 3
            || !userinfo.contains(&b':')
            || self.marker_len(userinfo) == Some(userinfo.len())
        {
            return None;
        }
        self.hit(Det::UrlAuth, s, at_pos)
    }

    /// IPv6: the hex/colon/dot run around a `:`, word-bounded, parsed by `std`; the
    /// unspecified and loopback addresses are not personal data and are left alone.
    #[inline(never)]
    fn ipv6(&self, b: &[u8], i: usize, covered: usize, v6_until: &mut usize) -> Option<Hit> {
        let ok = |c: u8| hexd(c) || c == b':' || c == b'.';
        let mut s = i;
        while s > covered && i - s < 45 && ok(b[s - 1]) {
            s -= 1;
        }
        let mut e = run(b, i, 46, ok);
        *v6_until = e;
        if word(before(b, s)) || word(at(b, e)) {
            return None;
        }
        // cheap shape check before parsing: `::` or at least 7 colons
        let colons = b[s..e].iter().filter(|&&c| c == b':').count();
        if colons < 7 && !b[s..e].windows(2).any(|w| w == b"::") {
            return None;
        }
        while e > s && b[e - 1] == b'.' {
            e -= 1;
        }
        let parse =
            |e: usize| -> Option<Ipv6Addr> { std::str::from_utf8(&b[s..e]).ok()?.parse().ok() };
        let (addr, e) = match parse(e) {
            Some(a) => (a, e),
            None if e > s + 1 && b[e - 1] == b':' && b[e - 2] != b':' => (parse(e - 1)?, e - 1),
            None => return None,
        };
        if addr.is_unspecified() || addr.is_loopback() {
            return None;
        }
        // at least two groups and four hex digits: `a::` and `ab::c` are not addresses
        let cand = &b[s..e];
        let groups = cand.split(|&c| c == b':').filter(|g| !g.is_empty()).count();
        if groups < 2 || cand.iter().filter(|c| c.is_ascii_hexdigit()).count() < 4 {
            return None;
        }
        self.hit(Det::Ip, s, e)
    }

    /// MAC `aa:bb:cc:dd:ee:ff` or with dashes (rule `mac`, off by default); triggered at the
    /// first separator.
    #[inline(never)]
    fn mac(&self, b: &[u8], i: usize, covered: usize) -> Option<Hit> {
        if i < 2 || i - 2 < covered {
            return None;
        }
        let s = i - 2;
        let sep = b[i];
        if word(before(b, s)) || before(b, s) == sep {
            return None;
        }
        for g in 0..6 {
            let p = s + g * 3;
            if !(hexd(at(b, p)) && hexd(at(b, p + 1))) {
                return None;
            }
            if g < 5 && at(b, p + 2) != sep {
                return None;
            }
        }
        let e = s + 17;
        if word(at(b, e)) || at(b, e) == sep {
            return None;
        }
        self.hit(Det::Mac, s, e)
    }

    /// `key=value`, `key: value`, `"key": "value"` inside free text: the key (the run of
    /// `[A-Za-z0-9_.-]` before the separator, optionally quoted) goes through the key rules;
    /// the value is the quoted string, or the unquoted token up to whitespace or one of
    /// `& , ; " ' ) ] } < > \`, extended by one token after an auth scheme word (`Bearer x`),
    /// or up to the end of the line for cookie keys.
    #[inline(always)]
    fn key_value(&self, b: &[u8], i: usize, covered: usize) -> Option<Hit> {
        let sep = b[i];
        let nb = at(b, i + 1);
        if sep == b'=' && (nb == b'=' || matches!(before(b, i), b'=' | b'!' | b'<' | b'>')) {
            return None;
        }
        // key, looking back
        let mut k_end = i;
        let mut spaces = 0;
        while k_end > 0 && b[k_end - 1] == b' ' && spaces < 3 {
            k_end -= 1;
            spaces += 1;
        }
        if matches!(before(b, k_end), b'"' | b'\'') {
            k_end -= 1;
            if before(b, k_end) == b'\\' {
                k_end -= 1;
            }
        }
        // up to 65 key bytes back (a longer run is not a key), building the key's byte set
        // on the way for the matcher's first filter
        let floor = k_end.saturating_sub(65);
        let mut mask = 0u32;
        let mut len = 0;
        for &c in b[floor..k_end].iter().rev() {
            let x = KEY_SCAN[usize::from(c)];
            if x & NOT_KEY != 0 {
                break;
            }
            mask |= x;
            len += 1;
        }
        // A key that runs back into text already redacted starts where that redaction ends:
        // the replacement ends in a non-key byte (`]`), so the scrubbed output, scanned again,
        // sees exactly this key (idempotence).
        let k_start = (k_end - len).max(covered.min(k_end));
        if k_start == k_end || k_end - k_start > 64 || before(b, k_start) == b'[' {
            return None;
        }
        let rule = self.keys.find_with_mask(&b[k_start..k_end], mask)?;
        self.pair_value(b, i, k_start, rule)
    }

    /// The value of a `key=value` pair whose key `b[k_start..]` matched `rule`; `i` is the
    /// separator.
    #[inline(never)]
    fn pair_value(&self, b: &[u8], i: usize, k_start: usize, rule: u16) -> Option<Hit> {
        // value
        let mut v = i + 1;
        let mut spaces = 0;
        while v < b.len() && (b[v] == b' ' || b[v] == b'\t') && spaces < 8 {
            v += 1;
            spaces += 1;
        }
        let escaped_quote = at(b, v) == b'\\' && matches!(at(b, v + 1), b'"' | b'\'');
        if escaped_quote {
            v += 2;
        }
        let first = at(b, v);
        let (vs, ve) = if escaped_quote {
            // JSON embedded in a string: `\"key\":\"value\"`
            let q = b[v - 1];
            let mut e = v;
            while e < b.len() && !(b[e] == b'\\' && at(b, e + 1) == q) {
                e += 1;
            }
            (v, e)
        } else if self.to_eol.contains(&rule) {
            let e = v + b[v..]
                .iter()
                .position(|&c| c == b'\n' || c == b'\r')
                .unwrap_or(b.len() - v);
            let e = if matches!(first, b'"' | b'\'') {
                // quoted cookie value: stop at the closing quote
                b[v + 1..e]
                    .iter()
                    .position(|&c| c == first)
                    .map_or(e, |p| v + 1 + p)
            } else {
                e
            };
            (
                if matches!(first, b'"' | b'\'') {
                    v + 1
                } else {
                    v
                },
                e,
            )
        } else if first == b'"' || first == b'\'' {
            let mut e = v + 1;
            while e < b.len() && !(b[e] == first && b[e - 1] != b'\\') {
                e += 1;
            }
            (v + 1, e)
        } else {
            if first == b'{' || first == b'[' {
                return None;
            }
            let tok_end = |from: usize| {
                run(b, from, usize::MAX, |c| {
                    !matches!(
                        c,
                        b' ' | b'\t'
                            | b'\n'
                            | b'\r'
                            | b'&'
                            | b','
                            | b';'
                            | b'"'
                            | b'\''
                            | b')'
                            | b']'
                            | b'}'
                            | b'<'
                            | b'>'
                            | b'\\'
                    )
                })
            };
            let e = tok_end(v);
            let tok = &b[v..e];
            if SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(tok))
                && at(b, e) == b' '
                && !matches!(at(b, e + 1), b' ' | b'\n' | b'\r' | 0)
            {
                (v, tok_end(e + 1))
            } else if tok.eq_ignore_ascii_case(b"digest") {
                let e = v + b[v..]
                    .iter()
                    .position(|&c| c == b'\n' || c == b'\r')
                    .unwrap_or(b.len() - v);
                (v, e)
            } else {
                (v, e)
            }
        };
        if ve <= vs || self.marker(b, vs) == Some(ve) {
            return None;
        }
        Some(Hit {
            start: vs,
            end: ve,
            rule,
            kind: HitKind::KeyValue,
            pair_start: k_start,
        })
    }

    // ---------------------------------------------------------------- '-' and '_'

    #[inline]
    fn at_dash(&self, b: &[u8], i: usize, covered: usize) -> Option<Hit> {
        // every `-` detector needs one of these (`-----BEGIN`, `xox?-`, `glpat-`, or the
        // UUID/MAC rules on); `ORD-2024` and `x-request-id` have none
        if at(b, i + 1) == b'-'
            || matches!(before(b, i), b'a' | b'b' | b'p' | b'r' | b's' | b't')
            || self.rule(Det::Uuid).is_some()
            || self.rule(Det::Mac).is_some()
        {
            return self.dash_tokens(b, i, covered);
        }
        None
    }

    /// The `-` detectors of [`at_dash`](Self::at_dash) past its pre-check.
    #[inline(never)]
    fn dash_tokens(&self, b: &[u8], i: usize, covered: usize) -> Option<Hit> {
        if b[i..].starts_with(b"-----BEGIN ") {
            return self.pem(b, i);
        }
        if self.rule(Det::SlackToken).is_some()
            && i >= 4
            && i - 4 >= covered
            && &b[i - 4..i - 1] == b"xox"
            && matches!(b[i - 1], b'a' | b'b' | b'p' | b'r' | b's')
            && !word(before(b, i - 4))
        {
            let e = run(b, i + 1, 256, |c| alnum(c) || c == b'-');
            if e - i > 10 {
                return self.hit(Det::SlackToken, i - 4, e);
            }
        }
        if self.rule(Det::GitlabToken).is_some()
            && i >= 5
            && i - 5 >= covered
            && &b[i - 5..i] == b"glpat"
            && !word(before(b, i - 5))
        {
            let e = run(b, i + 1, 256, |c| alnum(c) || c == b'-' || c == b'_');
            if e - i > 20 {
                return self.hit(Det::GitlabToken, i - 5, e);
            }
        }
        if self.rule(Det::Uuid).is_some() && i >= 8 && i - 8 >= covered {
            if let Some(h) = self.uuid(b, i - 8) {
                return Some(h);
            }
        }
        if self.rule(Det::Mac).is_some() {
            return self.mac(b, i, covered);
        }
        None
    }

    /// UUID 8-4-4-4-12 hex (rule `uuid`, off by default).
    fn uuid(&self, b: &[u8], s: usize) -> Option<Hit> {
        if b64url(before(b, s)) {
            return None;
        }
        let groups = [8usize, 4, 4, 4, 12];
        let mut p = s;
        for (g, &len) in groups.iter().enumerate() {
            if !(p..p + len).all(|k| hexd(at(b, k))) {
                return None;
            }
            p += len;
            if g < 4 {
                if at(b, p) != b'-' {
                    return None;
                }
                p += 1;
            }
        }
        if b64url(at(b, p)) {
            return None;
        }
        self.hit(Det::Uuid, s, p)
    }

    /// `-----BEGIN ... PRIVATE KEY-----` through the matching END line; an unterminated block
    /// is scrubbed to the end of the text (fail closed).
    fn pem(&self, b: &[u8], i: usize) -> Option<Hit> {
        self.rule(Det::PemKey)?;
        let head_end = run(b, i + 11, 64, |c| {
            c.is_ascii_uppercase() || c.is_ascii_digit() || c == b' '
        });
        if !b[i + 11..head_end].ends_with(b"PRIVATE KEY") || !b[head_end..].starts_with(b"-----") {
            return None;
        }
        let body = head_end + 5;
        let end = match find(&b[body..], b"-----END ") {
            Some(p) => {
                let e = body + p + 9;
                let tail = run(b, e, usize::MAX, |c| c != b'-' && c != b'\n');
                if b[tail..].starts_with(b"-----") {
                    tail + 5
                } else {
                    tail
                }
            }
            None => b.len(),
        };
        self.hit(Det::PemKey, i, end)
    }

    #[inline]
    fn at_underscore(&self, b: &[u8], i: usize, covered: usize) -> Option<Hit> {
        // every `_` token needs one of these two bytes before it (`gh?_`, `github_`, `?k_`,
        // `npm_`); `order_id` and `duration_ms` have none
        if i >= 2
            && matches!(
                (b[i - 2], b[i - 1]),
                (b'h', b'p' | b'o' | b'u' | b's' | b'r') | (b'u', b'b') | (_, b'k') | (b'p', b'm')
            )
        {
            return self.underscore_tokens(b, i, covered);
        }
        None
    }

    /// The `_` tokens of [`at_underscore`](Self::at_underscore) past its pre-check.
    #[inline(never)]
    fn underscore_tokens(&self, b: &[u8], i: usize, covered: usize) -> Option<Hit> {
        let tok = |s: usize, min: usize, d: Det, f: fn(u8) -> bool| -> Option<Hit> {
            if s < covered || word(before(b, s)) {
                return None;
            }
            let e = run(b, i + 1, 256, f);
            (e - (i + 1) >= min && !word(at(b, e))).then(|| self.hit(d, s, e))?
        };
        let prev = |n: usize| if i >= n { &b[i - n..i] } else { &[][..] };
        if self.rule(Det::GithubToken).is_some() {
            let p3 = prev(3);
            if matches!(p3, b"ghp" | b"gho" | b"ghu" | b"ghs" | b"ghr") {
                return tok(i - 3, 30, Det::GithubToken, alnum);
            }
            if prev(6) == b"github" && b[i + 1..].starts_with(b"pat_") {
                let s = i - 6;
                if s < covered || word(before(b, s)) {
                    return None;
                }
                let e = run(b, i + 5, 256, word);
                return (e - (i + 5) >= 22).then(|| self.hit(Det::GithubToken, s, e))?;
            }
        }
        if self.rule(Det::StripeKey).is_some()
            && matches!(prev(2), b"sk" | b"rk")
            && (b[i + 1..].starts_with(b"live_") || b[i + 1..].starts_with(b"test_"))
        {
            let s = i - 2;
            if s < covered || word(before(b, s)) {
                return None;
            }
            let e = run(b, i + 6, 256, alnum);
            return (e - (i + 6) >= 10 && !word(at(b, e)))
                .then(|| self.hit(Det::StripeKey, s, e))?;
        }
        if self.rule(Det::NpmToken).is_some() && prev(3) == b"npm" {
            return tok(i - 3, 36, Det::NpmToken, alnum);
        }
        None
    }

    // ---------------------------------------------------------------- letters

    /// JWT: `eyJ` at a word start, three base64url segments (signature may be empty), header
    /// decodes to a JSON object with an `"alg"` member.
    #[inline(never)]
    fn jwt(&self, b: &[u8], i: usize, covered: usize) -> Option<Hit> {
        self.rule(Det::Jwt)?;
        if i < 2 || i - 2 < covered || &b[i - 2..i] != b"ey" {
            return None;
        }
        let s = i - 2;
        let p = before(b, s);
        if b64url(p) || p == b'.' {
            return None;
        }
        let h_end = run(b, s, usize::MAX, b64url);
        if at(b, h_end) != b'.' || h_end - s > 2048 {
            return None;
        }
        let p_end = run(b, h_end + 1, usize::MAX, b64url);
        if p_end == h_end + 1 || at(b, p_end) != b'.' {
            return None;
        }
        let e = run(b, p_end + 1, usize::MAX, b64url);
        if at(b, e) == b'.' {
            return None;
        }
        let mut header = Vec::with_capacity((h_end - s) * 3 / 4 + 1);
        if !checks::b64_decode(&b[s..h_end], &mut header) {
            return None;
        }
        if header.first() != Some(&b'{') || find(&header, b"\"alg\"").is_none() {
            return None;
        }
        self.hit(Det::Jwt, s, e)
    }

    /// AWS access key ids: `AKIA`/`ASIA` + 16 upper-case alphanumerics, word-bounded.
    #[inline(never)]
    fn aws(&self, b: &[u8], i: usize) -> Option<Hit> {
        self.rule(Det::AwsKey)?;
        if word(before(b, i)) {
            return None;
        }
        let tag = b.get(i..i + 4)?;
        if tag != b"AKIA" && tag != b"ASIA" {
            return None;
        }
        let e = run(b, i + 4, 17, |c| {
            c.is_ascii_uppercase() || c.is_ascii_digit()
        });
        (e - (i + 4) == 16 && !word(at(b, e))).then(|| self.hit(Det::AwsKey, i, e))?
    }

    /// `Bearer <token>` (token of 8+ chars with a non-letter, or 20+ chars) and
    /// `Basic <base64>` (decoding to `user:pass`).
    #[inline(never)]
    fn auth_scheme(&self, b: &[u8], i: usize) -> Option<Hit> {
        if alnum(before(b, i)) {
            return None;
        }
        let rest = &b[i..];
        let (d, tok_start) = if rest.len() > 7 && rest[..7].eq_ignore_ascii_case(b"bearer ") {
            (Det::Bearer, i + 7)
        } else if rest.len() > 6 && rest[..6].eq_ignore_ascii_case(b"basic ") {
            (Det::BasicAuth, i + 6)
        } else {
            return None;
        };
        self.rule(d)?;
        let ts = run(b, tok_start, 8, |c| c == b' ');
        if d == Det::Bearer {
            let e = run(b, ts, 8192, |c| {
                alnum(c) || matches!(c, b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'-')
            });
            let t = &b[ts..e];
            let ok = t.len() >= 8 && (t.len() >= 20 || t.iter().any(|c| !c.is_ascii_alphabetic()));
            return (ok && !word(at(b, e))).then(|| self.hit(d, i, e))?;
        }
        let e = run(b, ts, 4096, |c| alnum(c) || matches!(c, b'+' | b'/' | b'='));
        if e - ts < 4 || word(at(b, e)) {
            return None;
        }
        let mut out = Vec::with_capacity(e - ts);
        (checks::b64_decode(&b[ts..e], &mut out) && out.len() >= 3 && out.contains(&b':'))
            .then(|| self.hit(d, i, e))?
    }
}

/// Substring search (first-byte scan, then compare). Only used after a rare trigger
/// (`-----BEGIN`, a decoded JWT header).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut k = 0;
    while k + needle.len() <= hay.len() {
        match hay[k..hay.len() - needle.len() + 1]
            .iter()
            .position(|&c| c == first)
        {
            Some(p) => {
                let at = k + p;
                if &hay[at..at + needle.len()] == needle {
                    return Some(at);
                }
                k = at + 1;
            }
            None => return None,
        }
    }
    None
}

//! The PII scrubber shared by logs, Sentry events and telemetry.
//!
//! A [`Scrubber`] is built once ([`Scrubber::builder`]), is `Send + Sync` and cheap to clone
//! (an `Arc` inside), and scrubs `&str` ([`Scrubber::scrub_str`], no allocation when nothing
//! matched), `String` ([`Scrubber::scrub_string`]) and `serde_json::Value` in place,
//! recursively ([`Scrubber::scrub_json`]). Every call returns a [`Report`]: which rule ids
//! fired and how often, and which limits were hit — never a value. [`Scrubber::explain`] and
//! [`Scrubber::explain_json`] say why something would be scrubbed (rule id, kind, span or JSON
//! path) without copying values.
//!
//! ```
//! use obs_core::redact::{Action, Scrubber};
//! use serde_json::json;
//!
//! let scrubber = Scrubber::builder()
//!     .with_defaults()
//!     .remove_rule("ip")                                  // keep client IPs
//!     .add_key("x-internal")                              // a header of ours
//!     .set_action("card", Action::Mask { keep_last: 4 })  // keep the last 4 digits
//!     .build()?;
//!
//! let mut event = json!({
//!     "event": "checkout",
//!     "user": { "email": "jane.doe@example.com", "password": "hunter2" },
//!     "card": "4111 1111 1111 1111",
//!     "message": "retry GET /pay?token=abc123&page=2 from 203.0.113.9",
//!     "headers": { "Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Accept": "*/*" },
//!     "author": "Jane",
//! });
//! let report = scrubber.scrub_json(&mut event);
//!
//! assert_eq!(event["user"]["email"], "[email]");
//! assert_eq!(event["user"]["password"], "[password]");
//! assert_eq!(event["card"], "**** **** **** 1111");
//! assert_eq!(event["message"], "retry GET /pay?token=[token]&page=2 from 203.0.113.9");
//! assert_eq!(event["headers"]["Authorization"], "[authorization]");
//! assert_eq!(event["headers"]["Accept"], "*/*");
//! assert_eq!(event["author"], "Jane"); // `auth` is matched as a whole word only
//! assert_eq!(report.count("email"), 1);
//! assert_eq!(report.count("token"), 1);
//! assert_eq!(report.total(), 5);
//! assert_eq!(report.to_string(), "authorization=1 card=1 email=1 password=1 token=1");
//! # Ok::<(), obs_core::redact::BuildError>(())
//! ```
//!
//! # Order
//!
//! For JSON objects: the optional allowlist of keys ([`ScrubberBuilder::allow_only_keys`],
//! fail closed: other keys are removed) → key rules on the object key (the whole value is
//! scrubbed when the key matches; `null` and booleans are left alone) → value detectors and
//! in-text `key=value` rules on string values (and on integers of 12+ digits, for card
//! numbers sent as JSON numbers). For text: one left-to-right pass finds key-value pairs and
//! detector matches; the first match wins, matches never overlap. User regex rules
//! ([`ScrubberBuilder::add_regex`]) run afterwards over the same text; overlaps are resolved
//! in favour of the earlier (then longer) match.
//!
//! # Key rules
//!
//! A key is split into words — on any non-alphanumeric ASCII byte (`_ - . space`), at
//! lower→upper case changes (`authToken`), before the last capital of a run followed by a
//! lower-case letter (`APIKey` → `api key`) and between letters and digits — and
//! lower-cased. It matches a key-list entry when 1 to 4 *consecutive whole words*
//! concatenate to the entry's own words (`api_key` → `apikey`). So `api_key` matches
//! `apiKey`, `x-api-key`, `APIKEY`; `auth` matches `auth_token` and `X-Auth` but **not**
//! `author`, `authenticated` or `oauth`; `token` does not match `tokens`. Lookup is a binary
//! search in a sorted word set behind cheap filters (length, byte set), with no regex and
//! no allocation for keys up to 64 bytes.
//! The rule id of a key rule is the entry as given (`api_key`), so its replacement is
//! `[api_key]`.
//!
//! Default key entries: `password passwd pwd passphrase secret client_secret token
//! access_token refresh_token csrf_token xsrf_token csrf xsrf api_key authorization auth
//! cookie set_cookie session session_id credentials credential private_key mysql_pwd otp`.
//!
//! In free text (log messages, query strings, headers, JSON embedded in strings) a key rule
//! applies to `key=value`, `key: value`, `"key": "value"` and `\"key\":\"value\"`: the key is
//! the run of `[A-Za-z0-9_.-]` right before the separator; the value is the quoted string, or
//! the unquoted token up to whitespace or one of ``& , ; " ' ) ] } < > \``. After an auth
//! scheme word (`Bearer`, `Basic`, `Token`, `Negotiate`, `NTLM`) the next token is included;
//! `Digest ...` and the values of `cookie`/`set_cookie` run to the end of the line. `==`,
//! `!=`, `<=`, `>=` are comparisons, not assignments.
//!
//! # Value detectors
//!
//! | id | catches | default | false-positive guard |
//! |----|---------|---------|----------------------|
//! | `email` | `local@domain.tld` (also `local%40domain.tld` in URLs) | on | local part `[A-Za-z0-9._%+-]`, domain with a dot and an alphabetic TLD of 2+ letters (`user@localhost`, `@scope/pkg` survive) |
//! | `card` | payment cards, 13–19 digits, bare or grouped by spaces/dashes | on | network prefix + length (Visa, Mastercard 51–55/2221–2720, Amex, Discover, JCB, Diners, UnionPay, Mir, Maestro) **and** Luhn; one separator kind, groups ≥ 3 digits (but the last); word-bounded, not after `.` (decimals) |
//! | `iban` | IBANs, compact or in groups of 4 | on | registered country length **and** mod-97 |
//! | `ip` | IPv4 and IPv6 | on | parsed by `std::net`; word-bounded; IPv4 not after a version word (`version`, `ver`, `release`, `build`, `firmware`, `appVersion`), not in a value whose JSON key contains `version`, `v1.2.3.4` is a version; IPv6 needs 2+ groups and 4+ hex digits, `::`/`::1` ignored |
//! | `jwt` | JSON Web Tokens | on | `eyJ` at a word start, 3 base64url segments, header decodes to a JSON object with `"alg"` |
//! | `bearer` | `Bearer <token>` | on | token ≥ 8 chars with a non-letter, or ≥ 20 chars (`bearer of bad news` survives) |
//! | `basic_auth` | `Basic <base64>` | on | base64 decoding to `user:pass` |
//! | `url_auth` | `user:pass` in `scheme://user:pass@host` | on | userinfo must contain `:` (`ssh://git@host` survives) |
//! | `pem_key` | `-----BEGIN … PRIVATE KEY-----` … `-----END …-----` | on | header must say `PRIVATE KEY` (certificates survive); an unterminated block is scrubbed to the end |
//! | `aws_key` | `AKIA`/`ASIA` + 16 `[A-Z0-9]` | on | exact length, word-bounded |
//! | `github_token` | `ghp_ gho_ ghu_ ghs_ ghr_` + 30+ alnum, `github_pat_` + 22+ | on | minimum length, word-bounded |
//! | `stripe_key` | `sk_live_ rk_live_ sk_test_ rk_test_` + 10+ alnum | on | minimum length |
//! | `slack_token` | `xoxa- xoxb- xoxp- xoxr- xoxs-` + 10+ | on | minimum length |
//! | `gitlab_token` | `glpat-` + 20+ | on | minimum length |
//! | `npm_token` | `npm_` + 36+ alnum | on | minimum length |
//! | `ssn` | US SSN `123-45-6789` | on | area ≠ 000/666/900–999, group ≠ 00, serial ≠ 0000; bare `123456789` or `123 45 6789` only within 16 bytes after the word `ssn` |
//! | `phone` | `+<8–15 digits>` with separators, `(555) 123-4567`, `555-123-4567` | **off** | digit count |
//! | `uuid` | 8-4-4-4-12 hex | **off** | exact shape, word-bounded |
//! | `imei` | 15 digits | **off** | Luhn, not a card |
//! | `mac` | `aa:bb:cc:dd:ee:ff`, `aa-bb-…` | **off** | exact shape |
//!
//! Every rule's default action is [`Action::Replace`] (`[<id>]`). Known remaining false
//! positives: a 13–19 digit number with a card prefix has a 1-in-10 chance to pass Luhn;
//! dotted quads that are not IPs and lack a version word before them are taken for IPs.
//!
//! # Actions
//!
//! [`Action::Remove`] deletes the match (a JSON entry whose key matched is removed; for a
//! `key=value` pair in text the key and separator go too, so scrubbing stays idempotent);
//! [`Action::Replace`] writes `[<id>]`; [`Action::Mask`] writes `*` for every character but
//! the separators `space - . @ / :` and the last `keep_last` alphanumerics; [`Action::Hash`]
//! writes `[<id>:v<version>:<16 hex>]`, the first 8 bytes of HMAC-SHA256(secret, match)
//! with the secret and version given to [`ScrubberBuilder::hmac_secret`], so equal values
//! stay joinable without being stored. Scrubbing is idempotent: our own `[<id>]` and
//! `[<id>:v<n>:<hex>]` markers are recognised and skipped (custom regexes never match inside
//! them), and since a replacement can join its neighbours into a new match (a key that ran
//! into a redacted token, a URL whose password was a `Bearer` token), text that had a match
//! is scanned again until nothing matches (at most 3 more passes; clean text is scanned
//! once). [`Scrubber::explain`] reports the first pass.
//!
//! # Limits
//!
//! Work is bounded ([`ScrubberBuilder::max_string_len`], [`ScrubberBuilder::max_depth`],
//! [`ScrubberBuilder::max_properties`]); when a limit is hit the scrubber fails closed (the
//! tail of a long string becomes `[truncated]`, a too-deep container becomes `"[depth]"`,
//! entries past the property budget are removed) and the [`Report`] counts the [`Cap`].
//!
//! # Speed
//!
//! One pass per string: a 256-entry table marks the bytes where a detector can start; the
//! text is classified 64 bytes at a time into a bit mask of candidate bytes (vector
//! comparisons, no per-byte branch), the scanner jumps from one to the next, and only there
//! does a hand-written validator run on a bounded window — and only when the candidate has a shape
//! that validator needs (a digit run of 9 or 13–19 digits or followed by `-`/space/`.` and a
//! digit; `ghp_`-like bytes before a `_`), so the plain numbers and `snake_case` names of
//! logs cost a few comparisons. ISO-8601 timestamps (`2024-01-15T10:30:00Z`)
//! are skipped in one step (exactly: no detector can match inside one); an in-text key is
//! rejected by its length and byte set before any word splitting, and a one-word key
//! (`status`, `Password`) is looked up directly (see `benches/redact.rs` and
//! `benches/README.md` for numbers against a naive all-regex baseline). Hand-written
//! validators instead of the `regex` crate: a single pass with checksum validation is
//! measurably faster than running one regex per detector, and no pattern can blow up in
//! compile size (the Sentry Relay incident); user regexes get a compile-size limit.

mod checks;
mod detect;
mod keys;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use detect::{Ctx, Det, Hit, HitKind, Scanner, DETECTORS, N_DET};
use keys::KeyMatcher;

/// Default key entries (see the module docs).
const DEFAULT_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "csrf_token",
    "xsrf_token",
    "csrf",
    "xsrf",
    "api_key",
    "authorization",
    "auth",
    "cookie",
    "set_cookie",
    "session",
    "session_id",
    "credentials",
    "credential",
    "private_key",
    "mysql_pwd",
    "otp",
];

/// Key entries whose in-text value runs to the end of the line.
const EOL_KEYS: &[&str] = &["cookie", "set_cookie"];

/// Report id counting entries removed by the key allowlist.
pub const ALLOWLIST_RULE_ID: &str = "allowlist";

/// What a rule does with what it matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Delete the match (in JSON, remove the entry whose key matched).
    Remove,
    /// Replace the match with `[<rule id>]`.
    #[default]
    Replace,
    /// Replace every character with `*` except the separators `space - . @ / :` and the last
    /// `keep_last` alphanumerics (`Mask { keep_last: 4 }` on a card: `**** **** **** 1111`).
    Mask {
        /// How many trailing alphanumeric characters stay visible.
        keep_last: u8,
    },
    /// Replace with `[<rule id>:v<version>:<16 hex>]`: a keyed HMAC-SHA256 prefix (needs
    /// [`ScrubberBuilder::hmac_secret`]).
    Hash,
}

/// The family a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// Matches keys (JSON object keys and `key=value` in text).
    Key,
    /// A built-in value detector.
    Value,
    /// A user regex.
    Custom,
}

/// A limit that was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cap {
    /// A string longer than `max_string_len` was cut and scanned up to the limit.
    StringLength,
    /// A container nested deeper than `max_depth` was replaced.
    Depth,
    /// Entries past the `max_properties` budget were removed.
    Properties,
}

impl Cap {
    const ALL: [Cap; 3] = [Cap::StringLength, Cap::Depth, Cap::Properties];

    /// Stable name: `max_string_len`, `max_depth`, `max_properties`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cap::StringLength => "max_string_len",
            Cap::Depth => "max_depth",
            Cap::Properties => "max_properties",
        }
    }
}

/// What one scrub call did: rule id → number of matches, and limits hit. Never values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    rules: BTreeMap<Arc<str>, u64>,
    caps: [u64; 3],
}

impl Report {
    /// Nothing was scrubbed and no limit was hit.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.caps.iter().all(|&c| c == 0)
    }

    /// Total matches over all rules.
    pub fn total(&self) -> u64 {
        self.rules.values().sum()
    }

    /// Matches of one rule (0 if it never fired).
    pub fn count(&self, rule_id: &str) -> u64 {
        self.rules.get(rule_id).copied().unwrap_or(0)
    }

    /// `(rule id, count)` for every rule that fired, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.rules.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// How many times a limit was hit.
    pub fn cap_hits(&self, cap: Cap) -> u64 {
        self.caps[cap as usize]
    }

    /// Limits hit at least once, with counts.
    pub fn caps(&self) -> impl Iterator<Item = (Cap, u64)> + '_ {
        Cap::ALL
            .into_iter()
            .map(|c| (c, self.caps[c as usize]))
            .filter(|&(_, n)| n > 0)
    }

    /// Adds `other`'s counts to this report.
    pub fn merge(&mut self, other: &Report) {
        for (k, v) in &other.rules {
            *self.rules.entry(k.clone()).or_insert(0) += v;
        }
        for (a, b) in self.caps.iter_mut().zip(other.caps) {
            *a += b;
        }
    }

    fn add(&mut self, id: &Arc<str>, n: u64) {
        match self.rules.get_mut(id) {
            Some(c) => *c += n,
            None => {
                self.rules.insert(id.clone(), n);
            }
        }
    }

    fn cap(&mut self, cap: Cap) {
        self.caps[cap as usize] += 1;
    }
}

impl fmt::Display for Report {
    /// `email=2 token=1 caps: max_depth=1`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (id, n) in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{id}={n}")?;
        }
        let mut caps = self.caps().peekable();
        if caps.peek().is_some() {
            f.write_str(if first { "caps:" } else { " caps:" })?;
            for (c, n) in caps {
                write!(f, " {}={n}", c.as_str())?;
            }
        }
        Ok(())
    }
}

/// Why something is (or would be) scrubbed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    /// A JSON object key matched a key rule; the whole value is scrubbed.
    Key,
    /// A `key=value` / `key: value` pair in text; the span is the value.
    KeyValue,
    /// A built-in value detector.
    Value,
    /// A user regex rule.
    Custom,
    /// A JSON entry removed because its key is not on the allowlist.
    NotAllowed,
    /// A limit was hit here.
    Cap(Cap),
}

/// One match: rule id, kind, and byte span in the scanned string (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule that fired (for [`FindingKind::Cap`], the cap's name).
    pub rule_id: Arc<str>,
    /// What kind of match.
    pub kind: FindingKind,
    /// Byte range in the string; for whole JSON values, the whole string (or `0..0` for
    /// non-strings).
    pub span: Range<usize>,
}

/// A [`Finding`] inside a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonFinding {
    /// JSON Pointer (RFC 6901) of the value, e.g. `/user/password`.
    pub path: String,
    /// The finding.
    pub finding: Finding,
}

/// Errors building a [`Scrubber`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `enable`, `remove_rule` or `set_action` named a rule that does not exist.
    #[error("unknown redaction rule {0:?}")]
    UnknownRule(String),
    /// Two rules share an id (or two keys normalise to the same words).
    #[error("duplicate redaction rule {0:?}")]
    DuplicateRule(String),
    /// A rule id must match `[a-z][a-z0-9_.-]{0,47}` (keys are lower-cased first).
    #[error("invalid redaction rule id {0:?}: use [a-z][a-z0-9_.-]{{0,47}}")]
    InvalidRuleId(String),
    /// A key has no alphanumeric word to match.
    #[error("redaction key {0:?} has no alphanumeric characters")]
    EmptyKey(String),
    /// A rule uses [`Action::Hash`] but no secret was given.
    #[error("rule {0:?} uses Action::Hash but no hmac_secret was configured")]
    MissingHashSecret(String),
    /// A user regex failed to compile (or exceeds the compile-size limit).
    #[error("redaction rule {id:?}: invalid regex")]
    Regex {
        /// The rule id.
        id: String,
        /// The regex error.
        #[source]
        source: regex::Error,
    },
}

#[derive(Debug, Clone)]
enum Spec {
    Key(Vec<u8>),
    Det(Det),
    Regex(String),
}

#[derive(Debug, Clone)]
struct RuleSpec {
    id: String,
    spec: Spec,
    action: Action,
}

/// Builds a [`Scrubber`]. Errors (unknown ids, bad regexes, ...) surface in
/// [`ScrubberBuilder::build`].
#[derive(Debug, Clone)]
pub struct ScrubberBuilder {
    rules: Vec<RuleSpec>,
    error: Option<BuildError>,
    secret: Option<(u32, Vec<u8>)>,
    allow: Option<Vec<String>>,
    max_string_len: usize,
    max_depth: usize,
    max_properties: usize,
}

fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 48
        && b[0].is_ascii_lowercase()
        && b.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-')
        })
}

impl ScrubberBuilder {
    fn fail(&mut self, e: BuildError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }

    fn push(&mut self, spec: RuleSpec) {
        if !valid_id(&spec.id) {
            return self.fail(BuildError::InvalidRuleId(spec.id));
        }
        if self.position(&spec.id).is_some() {
            return self.fail(BuildError::DuplicateRule(spec.id));
        }
        self.rules.push(spec);
    }

    /// Adds the default key rules and every detector that is on by default (see the module
    /// docs). Rules already present are kept as they are.
    pub fn with_defaults(mut self) -> Self {
        for k in DEFAULT_KEYS {
            if self.position(k).is_none() {
                self.rules.push(RuleSpec {
                    id: (*k).to_owned(),
                    spec: Spec::Key(keys::normalize(k)),
                    action: Action::Replace,
                });
            }
        }
        for (det, id, on) in DETECTORS {
            if on && self.position(id).is_none() {
                self.rules.push(RuleSpec {
                    id: id.to_owned(),
                    spec: Spec::Det(det),
                    action: Action::Replace,
                });
            }
        }
        self
    }

    /// Turns on a built-in detector by id (`phone`, `uuid`, `imei`, `mac`, or any default one).
    pub fn enable(mut self, id: &str) -> Self {
        match DETECTORS.iter().find(|(_, d, _)| *d == id) {
            Some(&(det, _, _)) => {
                if self.position(id).is_none() {
                    self.rules.push(RuleSpec {
                        id: id.to_owned(),
                        spec: Spec::Det(det),
                        action: Action::Replace,
                    });
                }
            }
            None => self.fail(BuildError::UnknownRule(id.to_owned())),
        }
        self
    }

    /// Removes a rule (key, detector or regex) by id.
    pub fn remove_rule(mut self, id: &str) -> Self {
        match self.position(id) {
            Some(p) => {
                self.rules.remove(p);
            }
            None => self.fail(BuildError::UnknownRule(id.to_owned())),
        }
        self
    }

    /// Adds a key rule (action [`Action::Replace`]); its id is the key lower-cased.
    pub fn add_key(self, key: &str) -> Self {
        self.add_key_with(key, Action::Replace)
    }

    /// Adds a key rule with an action.
    pub fn add_key_with(mut self, key: &str, action: Action) -> Self {
        let norm = keys::normalize(key);
        if norm.is_empty() {
            self.fail(BuildError::EmptyKey(key.to_owned()));
            return self;
        }
        self.push(RuleSpec {
            id: key.to_ascii_lowercase(),
            spec: Spec::Key(norm),
            action,
        });
        self
    }

    /// Adds a value rule from a regex (run over every scanned string after the built-in
    /// pass; compiled with a 1 MiB size limit). Matches are scrubbed with `action`.
    pub fn add_regex(mut self, id: &str, pattern: &str, action: Action) -> Self {
        self.push(RuleSpec {
            id: id.to_owned(),
            spec: Spec::Regex(pattern.to_owned()),
            action,
        });
        self
    }

    /// Sets the action of an existing rule.
    pub fn set_action(mut self, id: &str, action: Action) -> Self {
        match self.position(id) {
            Some(p) => self.rules[p].action = action,
            None => self.fail(BuildError::UnknownRule(id.to_owned())),
        }
        self
    }

    /// Sets the action of every rule added so far.
    pub fn set_all_actions(mut self, action: Action) -> Self {
        for r in &mut self.rules {
            r.action = action;
        }
        self
    }

    /// The HMAC-SHA256 secret for [`Action::Hash`] and its version (written into the
    /// output so secrets can be rotated).
    pub fn hmac_secret(mut self, version: u32, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some((version, secret.as_ref().to_vec()));
        self
    }

    /// Fail-closed allowlist for JSON: entries whose key is not listed (exact match) are
    /// removed at every object level, counted as [`ALLOWLIST_RULE_ID`]. Listed entries still
    /// go through the key rules and detectors.
    pub fn allow_only_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allow = Some(keys.into_iter().map(Into::into).collect());
        self
    }

    /// Strings longer than this (bytes) are scanned up to the limit and the rest replaced by
    /// `[truncated]`. Default 1 MiB.
    pub fn max_string_len(mut self, bytes: usize) -> Self {
        self.max_string_len = bytes;
        self
    }

    /// JSON containers nested deeper than this are replaced by `"[depth]"`. Default 32.
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// At most this many object entries plus array items are visited per JSON value; the
    /// rest is removed. Default 10 000.
    pub fn max_properties(mut self, n: usize) -> Self {
        self.max_properties = n;
        self
    }

    /// Compiles the scrubber.
    pub fn build(self) -> Result<Scrubber, BuildError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut det = [None; N_DET];
        let mut keys = KeyMatcher::default();
        let mut to_eol = Vec::new();
        let mut custom = Vec::new();
        let mut rules = Vec::with_capacity(self.rules.len());
        for (idx, r) in self.rules.into_iter().enumerate() {
            let idx = u16::try_from(idx).map_err(|_| BuildError::DuplicateRule(r.id.clone()))?;
            if r.action == Action::Hash && self.secret.is_none() {
                return Err(BuildError::MissingHashSecret(r.id));
            }
            let kind = match r.spec {
                Spec::Key(norm) => {
                    if !keys.insert(norm, idx) {
                        return Err(BuildError::DuplicateRule(r.id));
                    }
                    if EOL_KEYS.contains(&r.id.as_str()) {
                        to_eol.push(idx);
                    }
                    RuleKind::Key
                }
                Spec::Det(d) => {
                    det[d as usize] = Some(idx);
                    RuleKind::Value
                }
                Spec::Regex(p) => {
                    let re = regex::RegexBuilder::new(&p)
                        .size_limit(1 << 20)
                        .dfa_size_limit(1 << 20)
                        .build()
                        .map_err(|source| BuildError::Regex {
                            id: r.id.clone(),
                            source,
                        })?;
                    custom.push((re, idx));
                    RuleKind::Custom
                }
            };
            rules.push(RuleInfo {
                id: Arc::from(r.id),
                kind,
                action: r.action,
            });
        }
        let marker_ids = rules
            .iter()
            .map(|r| r.id.as_bytes().to_vec().into_boxed_slice())
            .collect();
        let scanner = Scanner::new(det, keys, to_eol, marker_ids);
        let mac = self.secret.map(|(v, s)| {
            (
                v,
                <Hmac<Sha256> as Mac>::new_from_slice(&s).expect("HMAC accepts any key length"),
            )
        });
        let allow = self.allow.map(|mut a| {
            a.sort();
            a.dedup();
            a
        });
        Ok(Scrubber {
            inner: Arc::new(Inner {
                rules,
                scanner,
                custom,
                mac,
                allow,
                allowlist_id: Arc::from(ALLOWLIST_RULE_ID),
                max_string_len: self.max_string_len,
                max_depth: self.max_depth,
                max_properties: self.max_properties,
            }),
        })
    }
}

#[derive(Debug)]
struct RuleInfo {
    id: Arc<str>,
    kind: RuleKind,
    action: Action,
}

struct Inner {
    rules: Vec<RuleInfo>,
    scanner: Scanner,
    custom: Vec<(regex::Regex, u16)>,
    mac: Option<(u32, Hmac<Sha256>)>,
    allow: Option<Vec<String>>,
    allowlist_id: Arc<str>,
    max_string_len: usize,
    max_depth: usize,
    max_properties: usize,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrubber")
            .field(
                "rules",
                &self.rules.iter().map(|r| &*r.id).collect::<Vec<_>>(),
            )
            .field("hmac_version", &self.mac.as_ref().map(|(v, _)| v))
            .field("allowlist", &self.allow)
            .field("max_string_len", &self.max_string_len)
            .field("max_depth", &self.max_depth)
            .field("max_properties", &self.max_properties)
            .finish()
    }
}

/// The compiled scrubber: `Send + Sync`, cheap to clone (shared `Arc`).
#[derive(Debug, Clone)]
pub struct Scrubber {
    inner: Arc<Inner>,
}

impl Default for Scrubber {
    /// All default rules ([`ScrubberBuilder::with_defaults`]), default limits.
    fn default() -> Self {
        Self::builder()
            .with_defaults()
            .build()
            .expect("the default rules are valid")
    }
}

const DEPTH_MARKER: &str = "[depth]";
const TRUNCATED_MARKER: &str = "[truncated]";
/// Passes after the first that [`Scrubber::scrub_str`] makes at most to reach a fixed point.
const MAX_EXTRA_PASSES: usize = 3;
/// Longest marker the scanner recognises: `[`, a rule id (≤ 48 bytes), `:v<≤ 10 digits>:`,
/// ≤ 64 hex digits, `]`.
const MAX_MARKER_LEN: usize = 128;

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mask_into(matched: &str, keep_last: u8, out: &mut String) {
    let alnum = matched.chars().filter(|c| c.is_alphanumeric()).count();
    let keep_from = alnum.saturating_sub(usize::from(keep_last));
    let mut k = 0;
    for ch in matched.chars() {
        if ch.is_alphanumeric() {
            out.push(if k >= keep_from { ch } else { '*' });
            k += 1;
        } else if matches!(ch, ' ' | '-' | '.' | '@' | '/' | ':') {
            out.push(ch);
        } else {
            out.push('*');
        }
    }
}

/// Drops a (possibly hostile, very deep) value without recursion.
fn drop_iteratively(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a),
            Value::Object(m) => stack.extend(m.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

fn version_key(k: &str) -> bool {
    k.as_bytes()
        .windows(7)
        .any(|w| w.eq_ignore_ascii_case(b"version"))
}

fn pointer_push(path: &mut String, seg: &str) {
    path.push('/');
    for ch in seg.chars() {
        match ch {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

impl Scrubber {
    /// An empty builder (no rules); call [`ScrubberBuilder::with_defaults`] for the defaults.
    pub fn builder() -> ScrubberBuilder {
        ScrubberBuilder {
            rules: Vec::new(),
            error: None,
            secret: None,
            allow: None,
            max_string_len: 1 << 20,
            max_depth: 32,
            max_properties: 10_000,
        }
    }

    /// The configured rules: `(id, kind, action)`, in the order they were added.
    pub fn rules(&self) -> impl Iterator<Item = (&str, RuleKind, Action)> + '_ {
        self.inner.rules.iter().map(|r| (&*r.id, r.kind, r.action))
    }

    /// Scrubs a string. Borrows (no allocation) when nothing matched.
    pub fn scrub_str<'a>(&self, text: &'a str) -> (Cow<'a, str>, Report) {
        let mut report = Report::default();
        let out = self.scrub_text(text, Ctx::default(), &mut report);
        (out, report)
    }

    /// Scrubs a `String` in place.
    pub fn scrub_string(&self, text: &mut String) -> Report {
        let mut report = Report::default();
        if let Cow::Owned(s) = self.scrub_text(text, Ctx::default(), &mut report) {
            *text = s;
        }
        report
    }

    /// Scrubs a JSON value in place, recursively (see the module docs for the order).
    pub fn scrub_json(&self, value: &mut Value) -> Report {
        let mut report = Report::default();
        let mut budget = self.inner.max_properties;
        self.walk(value, 0, &mut budget, Ctx::default(), &mut report);
        report
    }

    /// What [`Scrubber::scrub_str`] would scrub, with rule ids and byte spans (no values): the
    /// matches of the first pass over `text` (see the module docs on idempotence).
    pub fn explain(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        self.explain_text(text, Ctx::default(), &mut out);
        out
    }

    /// What [`Scrubber::scrub_json`] would scrub, with JSON Pointer paths (no values).
    pub fn explain_json(&self, value: &Value) -> Vec<JsonFinding> {
        let mut out = Vec::new();
        let mut budget = self.inner.max_properties;
        let mut path = String::new();
        self.explain_walk(value, 0, &mut budget, Ctx::default(), &mut path, &mut out);
        out
    }

    // ------------------------------------------------------------------ text

    fn capped<'a>(&self, text: &'a str) -> (&'a str, bool) {
        if text.len() > self.inner.max_string_len {
            (
                &text[..floor_boundary(text, self.inner.max_string_len)],
                true,
            )
        } else {
            (text, false)
        }
    }

    fn hits(&self, text: &str, ctx: Ctx) -> Vec<Hit> {
        let mut hits = Vec::new();
        self.inner.scanner.scan(text.as_bytes(), ctx, &mut hits);
        if !self.inner.custom.is_empty() {
            for (re, rule) in &self.inner.custom {
                for m in re.find_iter(text) {
                    if m.end() > m.start() && !self.in_marker(text.as_bytes(), m.start(), m.end()) {
                        hits.push(Hit {
                            start: m.start(),
                            end: m.end(),
                            rule: *rule,
                            kind: HitKind::Custom,
                            pair_start: m.start(),
                        });
                    }
                }
            }
            hits.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
            let mut last = 0;
            hits.retain(|h| {
                let keep = h.start >= last;
                if keep {
                    last = h.end;
                }
                keep
            });
        }
        hits.retain(|h| {
            text.is_char_boundary(h.pair_start)
                && text.is_char_boundary(h.start)
                && text.is_char_boundary(h.end)
        });
        hits
    }

    /// Is `b[start..end]` inside one of our own markers (`[pass]`, `[pass:v1:…]`)? Custom
    /// regexes are not marker-aware by themselves: `pass` would match inside `[pass]`.
    fn in_marker(&self, b: &[u8], start: usize, end: usize) -> bool {
        let from = start.saturating_sub(MAX_MARKER_LEN);
        b[from..=start]
            .iter()
            .rposition(|&c| c == b'[')
            .and_then(|p| {
                let open = from + p;
                self.inner
                    .scanner
                    .marker_len(&b[open..])
                    .map(|len| open + len)
            })
            .is_some_and(|close| close >= end)
    }

    fn render(&self, rule: &RuleInfo, matched: &str, out: &mut String) {
        match rule.action {
            Action::Remove => {}
            Action::Replace => {
                out.push('[');
                out.push_str(&rule.id);
                out.push(']');
            }
            Action::Mask { keep_last } => mask_into(matched, keep_last, out),
            Action::Hash => {
                let (version, mac) = self.inner.mac.as_ref().expect("checked in build");
                let mut mac = mac.clone();
                mac.update(matched.as_bytes());
                let digest = mac.finalize().into_bytes();
                out.push('[');
                out.push_str(&rule.id);
                out.push_str(":v");
                out.push_str(&version.to_string());
                out.push(':');
                checks::hex(&digest[..8], out);
                out.push(']');
            }
        }
    }

    fn scrub_text<'a>(&self, text: &'a str, ctx: Ctx, report: &mut Report) -> Cow<'a, str> {
        let first = self.scrub_pass(text, ctx, report, true);
        let Cow::Owned(mut out) = first else {
            return first;
        };
        // A replacement can join its neighbours into a new match (module docs, idempotence):
        // scrub the output again until nothing matches. Clean text never gets here.
        for _ in 0..MAX_EXTRA_PASSES {
            match self.scrub_pass(&out, ctx, report, false) {
                Cow::Borrowed(_) => break,
                Cow::Owned(next) => out = next,
            }
        }
        Cow::Owned(out)
    }

    /// One scan and rewrite of `text`; `cap`: apply [`ScrubberBuilder::max_string_len`] (the
    /// first pass; later passes see its already capped output).
    fn scrub_pass<'a>(
        &self,
        text: &'a str,
        ctx: Ctx,
        report: &mut Report,
        cap: bool,
    ) -> Cow<'a, str> {
        let (scan, truncated) = if cap {
            self.capped(text)
        } else {
            (text, false)
        };
        let hits = self.hits(scan, ctx);
        if hits.is_empty() && !truncated {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(scan.len() + 16);
        let mut last = 0;
        let mut changed = truncated;
        for h in &hits {
            let rule = &self.inner.rules[usize::from(h.rule)];
            if rule.action == Action::Remove && h.kind == HitKind::KeyValue {
                // remove the whole pair, so the next token does not become the value
                out.push_str(&scan[last..h.pair_start.max(last)]);
                report.add(&rule.id, 1);
                changed = true;
                last = h.end;
                continue;
            }
            out.push_str(&scan[last..h.start]);
            let matched = &scan[h.start..h.end];
            let mark = out.len();
            self.render(rule, matched, &mut out);
            if out[mark..] != *matched {
                report.add(&rule.id, 1);
                changed = true;
            }
            last = h.end;
        }
        out.push_str(&scan[last..]);
        if truncated {
            out.push_str(TRUNCATED_MARKER);
            report.cap(Cap::StringLength);
        }
        if changed {
            Cow::Owned(out)
        } else {
            Cow::Borrowed(text)
        }
    }

    fn explain_text(&self, text: &str, ctx: Ctx, out: &mut Vec<Finding>) {
        let (scan, truncated) = self.capped(text);
        for h in self.hits(scan, ctx) {
            out.push(Finding {
                rule_id: self.inner.rules[usize::from(h.rule)].id.clone(),
                kind: match h.kind {
                    HitKind::Detector => FindingKind::Value,
                    HitKind::KeyValue => FindingKind::KeyValue,
                    HitKind::Custom => FindingKind::Custom,
                },
                span: h.start..h.end,
            });
        }
        if truncated {
            out.push(Finding {
                rule_id: Arc::from(Cap::StringLength.as_str()),
                kind: FindingKind::Cap(Cap::StringLength),
                span: scan.len()..text.len(),
            });
        }
    }

    // ------------------------------------------------------------------ json

    fn allowed(&self, key: &str) -> bool {
        match &self.inner.allow {
            Some(a) => a.binary_search_by(|k| k.as_str().cmp(key)).is_ok(),
            None => true,
        }
    }

    /// Whether a whole value under a matching key needs scrubbing.
    fn key_target(&self, v: &Value) -> bool {
        match v {
            Value::Null | Value::Bool(_) => false,
            Value::String(s) => {
                !s.is_empty() && self.inner.scanner.marker_len(s.as_bytes()) != Some(s.len())
            }
            _ => true,
        }
    }

    /// Scrubs a whole value under a matching key; returns true when the entry must be removed.
    fn scrub_keyed(&self, rule: &RuleInfo, v: &mut Value, report: &mut Report) -> bool {
        if !self.key_target(v) {
            return false;
        }
        report.add(&rule.id, 1);
        let scalar = matches!(v, Value::String(_) | Value::Number(_));
        let text = match &mut *v {
            Value::String(s) => std::mem::take(s),
            Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        let mut out = String::new();
        match rule.action {
            Action::Remove => return true,
            Action::Mask { .. } if !scalar => {
                out.push('[');
                out.push_str(&rule.id);
                out.push(']');
            }
            _ => self.render(rule, &text, &mut out),
        }
        *v = Value::String(out);
        false
    }

    fn walk(&self, v: &mut Value, depth: usize, budget: &mut usize, ctx: Ctx, report: &mut Report) {
        match v {
            Value::String(s) => {
                if let Cow::Owned(o) = self.scrub_text(s, ctx, report) {
                    *s = o;
                }
            }
            Value::Number(n) => {
                // card numbers (and IMEIs) sent as JSON integers
                if n.as_u64().is_some_and(|u| u >= 1_000_000_000_000) {
                    let t = n.to_string();
                    if let Cow::Owned(o) = self.scrub_text(&t, ctx, report) {
                        *v = Value::String(o);
                    }
                }
            }
            Value::Array(items) => {
                if depth >= self.inner.max_depth {
                    drop_iteratively(std::mem::replace(v, Value::String(DEPTH_MARKER.to_owned())));
                    report.cap(Cap::Depth);
                    return;
                }
                let mut keep = items.len();
                for (idx, item) in items.iter_mut().enumerate() {
                    if *budget == 0 {
                        keep = idx;
                        report.cap(Cap::Properties);
                        break;
                    }
                    *budget -= 1;
                    self.walk(item, depth + 1, budget, ctx, report);
                }
                items.truncate(keep);
            }
            Value::Object(map) => {
                if depth >= self.inner.max_depth {
                    drop_iteratively(std::mem::replace(v, Value::String(DEPTH_MARKER.to_owned())));
                    report.cap(Cap::Depth);
                    return;
                }
                if self.inner.allow.is_some() {
                    let before = map.len();
                    map.retain(|k, _| self.allowed(k));
                    let removed = before - map.len();
                    if removed > 0 {
                        report.add(&self.inner.allowlist_id, removed as u64);
                    }
                }
                let mut remove: Vec<String> = Vec::new();
                let mut over = false;
                for (k, val) in map.iter_mut() {
                    if *budget == 0 {
                        over = true;
                        remove.push(k.clone());
                        continue;
                    }
                    *budget -= 1;
                    match self.inner.scanner.keys.find(k.as_bytes()) {
                        Some(rule) => {
                            if self.scrub_keyed(&self.inner.rules[usize::from(rule)], val, report) {
                                remove.push(k.clone());
                            }
                        }
                        None => {
                            let ctx = Ctx {
                                version_hint: version_key(k),
                            };
                            self.walk(val, depth + 1, budget, ctx, report);
                        }
                    }
                }
                if over {
                    report.cap(Cap::Properties);
                }
                for k in remove {
                    map.remove(&k);
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }

    fn explain_walk(
        &self,
        v: &Value,
        depth: usize,
        budget: &mut usize,
        ctx: Ctx,
        path: &mut String,
        out: &mut Vec<JsonFinding>,
    ) {
        let cap = |out: &mut Vec<JsonFinding>, path: &str, cap: Cap| {
            out.push(JsonFinding {
                path: path.to_owned(),
                finding: Finding {
                    rule_id: Arc::from(cap.as_str()),
                    kind: FindingKind::Cap(cap),
                    span: 0..0,
                },
            });
        };
        match v {
            Value::String(s) => {
                let mut fs = Vec::new();
                self.explain_text(s, ctx, &mut fs);
                out.extend(fs.into_iter().map(|finding| JsonFinding {
                    path: path.clone(),
                    finding,
                }));
            }
            Value::Number(n) => {
                if n.as_u64().is_some_and(|u| u >= 1_000_000_000_000) {
                    let mut fs = Vec::new();
                    self.explain_text(&n.to_string(), ctx, &mut fs);
                    out.extend(fs.into_iter().map(|finding| JsonFinding {
                        path: path.clone(),
                        finding,
                    }));
                }
            }
            Value::Array(items) => {
                if depth >= self.inner.max_depth {
                    return cap(out, path, Cap::Depth);
                }
                for (idx, item) in items.iter().enumerate() {
                    let len = path.len();
                    pointer_push(path, &idx.to_string());
                    if *budget == 0 {
                        cap(out, path, Cap::Properties);
                        path.truncate(len);
                        break;
                    }
                    *budget -= 1;
                    self.explain_walk(item, depth + 1, budget, ctx, path, out);
                    path.truncate(len);
                }
            }
            Value::Object(map) => {
                if depth >= self.inner.max_depth {
                    return cap(out, path, Cap::Depth);
                }
                for (k, val) in map {
                    let len = path.len();
                    pointer_push(path, k);
                    if !self.allowed(k) {
                        out.push(JsonFinding {
                            path: path.clone(),
                            finding: Finding {
                                rule_id: self.inner.allowlist_id.clone(),
                                kind: FindingKind::NotAllowed,
                                span: 0..0,
                            },
                        });
                    } else if *budget == 0 {
                        cap(out, path, Cap::Properties);
                    } else {
                        *budget -= 1;
                        match self.inner.scanner.keys.find(k.as_bytes()) {
                            Some(rule) => {
                                if self.key_target(val) {
                                    let span = match val {
                                        Value::String(s) => 0..s.len(),
                                        _ => 0..0,
                                    };
                                    out.push(JsonFinding {
                                        path: path.clone(),
                                        finding: Finding {
                                            rule_id: self.inner.rules[usize::from(rule)].id.clone(),
                                            kind: FindingKind::Key,
                                            span,
                                        },
                                    });
                                }
                            }
                            None => {
                                let ctx = Ctx {
                                    version_hint: version_key(k),
                                };
                                self.explain_walk(val, depth + 1, budget, ctx, path, out);
                            }
                        }
                    }
                    path.truncate(len);
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubber_is_send_sync() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Scrubber>();
    }

    #[test]
    fn clean_text_borrows() {
        let s = Scrubber::default();
        let (out, report) = s.scrub_str("User authenticated, author=Jane, tokens: 123");
        assert!(matches!(out, Cow::Borrowed(_)));
        assert!(report.is_empty());
    }

    #[test]
    fn markers_are_skipped() {
        let s = Scrubber::default();
        let (out, report) = s.scrub_str("password=[password] and [email]");
        assert!(matches!(out, Cow::Borrowed(_)), "{out}");
        assert!(report.is_empty());
    }

    #[test]
    fn report_display() {
        let mut r = Report::default();
        r.add(&Arc::from("email"), 2);
        r.cap(Cap::Depth);
        assert_eq!(r.to_string(), "email=2 caps: max_depth=1");
    }
}

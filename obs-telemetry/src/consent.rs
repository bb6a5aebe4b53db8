//! Per-subject consent: the app says who opted in; the recorder asks before doing any work.
//!
//! [`Consent::allows`] runs on the caller's task inside [`Recorder::record`](crate::Recorder::record),
//! before anything is allocated, so it must be synchronous and cheap. Apps whose opt-in flag
//! lives in a database keep a [`CachedConsent`] up to date (on login, on settings change) and
//! hand it to the recorder; a closure `Fn(Option<&str>) -> bool` works too.
//!
//! ```
//! use obs_telemetry::{CachedConsent, Consent};
//!
//! let consent = CachedConsent::new();
//! consent.set("user-1", true);
//! consent.set("user-2", false);
//! assert!(consent.allows(Some("user-1")));
//! assert!(!consent.allows(Some("user-2")));
//! assert!(!consent.allows(Some("unknown")));      // opt-in: unknown means no
//! assert!(!consent.allows(None));                 // anonymous events: off unless allowed
//! assert!(CachedConsent::new().allow_anonymous(true).allows(None));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;

/// Decides whether events about `subject` (the user id; `None` for anonymous events) may be
/// recorded. Must not block: it runs on the caller's task before any work is done.
pub trait Consent: Send + Sync + 'static {
    /// `true` if events for this subject may be recorded.
    fn allows(&self, subject: Option<&str>) -> bool;
}

impl<F> Consent for F
where
    F: Fn(Option<&str>) -> bool + Send + Sync + 'static,
{
    fn allows(&self, subject: Option<&str>) -> bool {
        self(subject)
    }
}

/// Everyone consents (the default when no [`Consent`] is configured: only the global
/// `TELEMETRY_ENABLED` switch applies).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Consent for AllowAll {
    fn allows(&self, _subject: Option<&str>) -> bool {
        true
    }
}

/// An in-memory opt-in table the app keeps current (e.g. from its `telemetryOptIn` column).
///
/// Unknown subjects are treated as not consenting (opt-in). Lookups take a read lock and
/// allocate nothing.
#[derive(Default)]
pub struct CachedConsent {
    subjects: RwLock<HashMap<String, bool>>,
    anonymous: bool,
}

impl CachedConsent {
    /// An empty table: nobody has opted in, anonymous events are refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether events without a subject are allowed (default `false`).
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.anonymous = allow;
        self
    }

    /// Records `subject`'s choice.
    pub fn set(&self, subject: impl Into<String>, opted_in: bool) {
        self.subjects
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(subject.into(), opted_in);
    }

    /// Forgets `subject` (it is then treated as not consenting).
    pub fn remove(&self, subject: &str) {
        self.subjects
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(subject);
    }
}

impl Consent for CachedConsent {
    fn allows(&self, subject: Option<&str>) -> bool {
        match subject {
            None => self.anonymous,
            Some(s) => self
                .subjects
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(s)
                .copied()
                .unwrap_or(false),
        }
    }
}

impl fmt::Debug for CachedConsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.subjects.read().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("CachedConsent")
            .field("subjects", &n)
            .field("anonymous", &self.anonymous)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closures_are_consent() {
        let c = |s: Option<&str>| s == Some("yes");
        assert!(c.allows(Some("yes")));
        assert!(!c.allows(None));
    }

    #[test]
    fn revoking_takes_effect() {
        let c = CachedConsent::new();
        c.set("u", true);
        assert!(c.allows(Some("u")));
        c.set("u", false);
        assert!(!c.allows(Some("u")));
        c.set("u", true);
        c.remove("u");
        assert!(!c.allows(Some("u")));
    }
}

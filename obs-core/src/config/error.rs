//! Configuration errors: each names the variable, what was expected and what was found,
//! without ever repeating a secret.

use std::borrow::Cow;
use std::fmt;

/// Longest part of a rejected (non-secret) value repeated in an error message, in characters.
const MAX_SHOWN_CHARS: usize = 80;

/// How a rejected value is shown in a [`ConfigError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Got {
    /// A non-secret value, shown quoted with control characters escaped and cut at 80 characters.
    Value(String),
    /// A URL whose credentials were replaced by `***`, shown quoted.
    Masked(String),
    /// A secret value: only its length is shown.
    Secret {
        /// Length of the rejected value in bytes.
        len: usize,
    },
}

impl Got {
    pub(crate) fn value(raw: &str) -> Self {
        Got::Value(raw.to_owned())
    }

    pub(crate) fn secret(raw: &str) -> Self {
        Got::Secret { len: raw.len() }
    }

    /// Shows a URL with its user-info (user name and password) masked. A value whose
    /// credentials cannot be located safely is treated as a secret.
    pub(crate) fn masked_url(raw: &str) -> Self {
        match mask_userinfo(raw) {
            Some(masked) => Got::Masked(masked),
            None => Got::secret(raw),
        }
    }
}

/// Replaces everything between `://` and the last `@` with `***`. Returns `None` when the value
/// has an `@` but no `://`, i.e. when it is unclear which part is the secret.
pub(crate) fn mask_userinfo(raw: &str) -> Option<String> {
    match (raw.find("://"), raw.rfind('@')) {
        (_, None) => Some(raw.to_owned()),
        (Some(scheme_end), Some(at)) if at > scheme_end + 3 => {
            Some(format!("{}***{}", &raw[..scheme_end + 3], &raw[at..]))
        }
        (Some(scheme_end), Some(at)) if at == scheme_end + 3 => Some(raw.to_owned()),
        _ => None,
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    let mut chars = s.chars();
    for c in chars.by_ref().take(MAX_SHOWN_CHARS) {
        // `escape_debug` escapes quotes, backslashes and control characters, so a hostile value
        // cannot break the message or inject lines into a log.
        write!(f, "{}", c.escape_debug())?;
    }
    f.write_str("\"")?;
    if chars.next().is_some() {
        write!(f, " (cut, {} bytes in all)", s.len())?;
    }
    Ok(())
}

impl fmt::Display for Got {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Got::Value(v) | Got::Masked(v) => write_quoted(f, v),
            Got::Secret { len } => write!(f, "a secret value of {len} bytes (not shown)"),
        }
    }
}

/// One invalid setting.
///
/// The message names the variable, the expected form and the value found, e.g.
/// `SENTRY_TRACES_SAMPLE_RATE must be a number between 0 and 1, got "1.5"`. Secrets
/// (`SENTRY_DSN`, `REDIS_PASSWORD`, `METRICS_API_TOKEN`, `HEALTH_TOKEN`, passwords inside
/// `REDIS_URL` and `DATABASE_URL`) are never repeated: see [`Got`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A variable is set to a value that does not have the expected form.
    #[error("{var} must be {expected}, got {got}")]
    Invalid {
        /// The environment variable (or the setting named after it).
        var: &'static str,
        /// The accepted form, e.g. `a number between 0 and 1`.
        expected: Cow<'static, str>,
        /// The rejected value, or only its length for secrets.
        got: Got,
    },
    /// A variable is set but only makes sense together with another one that is unset.
    #[error("{var} is set but {requires} is not: set {requires} too, or unset {var}")]
    Requires {
        /// The variable that is set.
        var: &'static str,
        /// The variable it needs.
        requires: &'static str,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        var: &'static str,
        expected: impl Into<Cow<'static, str>>,
        got: Got,
    ) -> Self {
        ConfigError::Invalid {
            var,
            expected: expected.into(),
            got,
        }
    }

    /// The variable this error is about.
    pub fn var(&self) -> &'static str {
        match self {
            ConfigError::Invalid { var, .. } | ConfigError::Requires { var, .. } => var,
        }
    }
}

/// Every invalid setting found in one pass, so all of them can be fixed at once.
///
/// Never empty. `Display` lists one error per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// Wraps a non-empty list; `None` if `errors` is empty.
    pub(crate) fn from_vec(errors: Vec<ConfigError>) -> Option<Self> {
        (!errors.is_empty()).then_some(ConfigErrors(errors))
    }

    /// The errors, in the order the variables were read.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// Number of errors (at least 1).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The error about `var`, if any.
    pub fn get(&self, var: &str) -> Option<&ConfigError> {
        self.0.iter().find(|e| e.var() == var)
    }

    /// The errors as a vector.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.0
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [only] = self.0.as_slice() {
            return write!(f, "invalid configuration: {only}");
        }
        write!(f, "invalid configuration ({} errors):", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

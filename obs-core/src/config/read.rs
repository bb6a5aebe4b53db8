//! The reader every section uses: looks variables up, treats empty as unset, parses, and
//! collects every error instead of stopping at the first.

use std::time::Duration;

use url::Url;

use super::error::{ConfigError, Got};
use super::Secret;

/// Where values come from: the process environment, a map in tests, builder overrides.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(crate) struct Reader<'a> {
    lookup: Lookup<'a>,
    pub(crate) errors: Vec<ConfigError>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(lookup: Lookup<'a>) -> Self {
        Reader {
            lookup,
            errors: Vec::new(),
        }
    }

    /// The trimmed value of `var`; `None` when unset, empty or only whitespace.
    pub(crate) fn raw(&self, var: &str) -> Option<String> {
        let v = (self.lookup)(var)?;
        let t = v.trim();
        if t.is_empty() {
            None
        } else if t.len() == v.len() {
            Some(v)
        } else {
            Some(t.to_owned())
        }
    }

    pub(crate) fn is_set(&self, var: &str) -> bool {
        self.raw(var).is_some()
    }

    pub(crate) fn push(&mut self, e: ConfigError) {
        self.errors.push(e);
    }

    /// Parses `var` with `parse`; records the error and returns `None` if it fails.
    pub(crate) fn parse<T>(
        &mut self,
        var: &'static str,
        parse: impl FnOnce(&str) -> Result<T, ConfigError>,
    ) -> Option<T> {
        let raw = self.raw(var)?;
        match parse(&raw) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    pub(crate) fn bool(&mut self, var: &'static str, default: bool) -> bool {
        self.parse(var, |s| parse_bool(var, s)).unwrap_or(default)
    }

    /// A non-secret free-form string, checked by `check` (which returns the expected form on
    /// failure).
    pub(crate) fn string(
        &mut self,
        var: &'static str,
        check: impl FnOnce(&str) -> Result<(), &'static str>,
    ) -> Option<String> {
        self.parse(var, |s| {
            check(s)
                .map(|()| s.to_owned())
                .map_err(|expected| ConfigError::invalid(var, expected, Got::value(s)))
        })
    }

    pub(crate) fn secret(&mut self, var: &'static str) -> Option<Secret> {
        self.raw(var).map(Secret::new)
    }
}

/// `true/false/1/0/yes/no/on/off`, case-insensitive.
pub(crate) fn parse_bool(var: &'static str, s: &str) -> Result<bool, ConfigError> {
    const TRUE: [&str; 4] = ["true", "1", "yes", "on"];
    const FALSE: [&str; 4] = ["false", "0", "no", "off"];
    if TRUE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Ok(true)
    } else if FALSE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Ok(false)
    } else {
        Err(ConfigError::invalid(
            var,
            "a boolean (true/false, 1/0, yes/no, on/off)",
            Got::value(s),
        ))
    }
}

/// A number in `0.0..=1.0`.
pub(crate) fn parse_unit_f64(var: &'static str, s: &str) -> Result<f64, ConfigError> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(ConfigError::invalid(
            var,
            "a number between 0 and 1",
            Got::value(s),
        )),
    }
}

/// A positive whole number that fits in `u32`.
pub(crate) fn parse_positive_u32(var: &'static str, s: &str) -> Result<u32, ConfigError> {
    match s.parse::<u32>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(ConfigError::invalid(
            var,
            "a positive whole number (1 to 4294967295)",
            Got::value(s),
        )),
    }
}

/// A TCP port, `0..=65535` (`0` asks the OS for a free port) when `allow_zero`.
pub(crate) fn parse_port(var: &'static str, s: &str, allow_zero: bool) -> Result<u16, ConfigError> {
    match s.parse::<u16>() {
        Ok(0) if !allow_zero => {}
        Ok(v) => return Ok(v),
        Err(_) => {}
    }
    let expected = if allow_zero {
        "a port number from 0 to 65535"
    } else {
        "a port number from 1 to 65535"
    };
    Err(ConfigError::invalid(var, expected, Got::value(s)))
}

/// Longest window accepted for `RATE_LIMIT_WINDOW`: 30 days.
pub(crate) const MAX_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// Whole seconds (`60`) or a duration with units (`60s`, `15m`, `1h`, `1h 30m`, `500ms`).
pub(crate) fn parse_window(var: &'static str, s: &str) -> Result<Duration, ConfigError> {
    let parsed = if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>().ok().map(Duration::from_secs)
    } else {
        humantime::parse_duration(s).ok()
    };
    match parsed {
        Some(d) if !d.is_zero() && d <= MAX_WINDOW => Ok(d),
        _ => Err(ConfigError::invalid(
            var,
            "a positive duration of at most 30 days: whole seconds (60) or with a unit (60s, 15m, 1h)",
            Got::value(s),
        )),
    }
}

/// An `http://` or `https://` URL with a host. `secret` hides the value in errors.
pub(crate) fn parse_http_url(var: &'static str, s: &str) -> Result<Url, ConfigError> {
    match Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(u),
        _ => Err(ConfigError::invalid(
            var,
            "an http:// or https:// URL with a host",
            Got::masked_url(s),
        )),
    }
}

/// Checks shared by Sentry's environment and release names: no line breaks, tabs or slashes,
/// at most `max` bytes.
pub(crate) fn sentry_name(s: &str, max: usize) -> bool {
    s.len() <= max && !s.contains(['\n', '\r', '\t', '/', '\\']) && s != "." && s != ".."
}

//! Running Sentry events and breadcrumbs through the [`Scrubber`].

use std::collections::BTreeMap;

use sentry_core::protocol::{Breadcrumb, Context, Event, Map, Url};
use serde_json::Value;

use crate::redact::Scrubber;

/// Header names dropped outright when `send_default_pii` is off (their values are secrets by
/// definition, whatever the scrubber thinks of them).
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// Scrubs `event` in place: message and log entry, exception values, request (URL, query
/// string, body, headers, cookies, env), `extra`, context maps, tags, breadcrumbs and user.
///
/// Without `pii`, cookies, secret headers (`Authorization`, `Cookie`, ...), the user's IP
/// address, email and username are removed first. Structural fields (event id, timestamps,
/// SDK info, stack frames, typed OS/runtime contexts) are left alone.
pub fn scrub_event(scrubber: &Scrubber, pii: bool, event: &mut Event<'static>) {
    if let Some(message) = event.message.as_mut() {
        scrubber.scrub_string(message);
    }
    if let Some(entry) = event.logentry.as_mut() {
        scrubber.scrub_string(&mut entry.message);
        for param in &mut entry.params {
            scrubber.scrub_json(param);
        }
    }
    for exception in &mut event.exception.values {
        if let Some(value) = exception.value.as_mut() {
            scrubber.scrub_string(value);
        }
    }
    if let Some(request) = event.request.as_mut() {
        if !pii {
            request.cookies = None;
            request
                .headers
                .retain(|name, _| !SECRET_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s)));
        }
        if let Some(url) = request.url.as_mut() {
            scrub_url(scrubber, url);
        }
        for field in [
            &mut request.query_string,
            &mut request.data,
            &mut request.cookies,
        ] {
            if let Some(text) = field.as_mut() {
                scrubber.scrub_string(text);
            }
        }
        scrub_string_map(scrubber, &mut request.headers);
        scrub_string_map(scrubber, &mut request.env);
    }
    scrub_map(scrubber, &mut event.extra);
    for context in event.contexts.values_mut() {
        if let Context::Other(map) = context {
            scrub_map(scrubber, map);
        }
    }
    scrub_string_map(scrubber, &mut event.tags);
    for crumb in &mut event.breadcrumbs.values {
        scrub_breadcrumb(scrubber, crumb);
    }
    if let Some(user) = event.user.as_mut() {
        if !pii {
            user.ip_address = None;
            user.email = None;
            user.username = None;
        }
        if let Some(id) = user.id.as_mut() {
            scrubber.scrub_string(id);
        }
        for field in [&mut user.email, &mut user.username] {
            if let Some(text) = field.as_mut() {
                scrubber.scrub_string(text);
            }
        }
        scrub_map(scrubber, &mut user.other);
    }
}

/// Scrubs the path and query of a request URL; credentials in it are removed. The host is
/// the server's own and is kept (an IP host would not survive as `[ip]` in a URL).
fn scrub_url(scrubber: &Scrubber, url: &mut Url) {
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let (path, report) = scrubber.scrub_str(url.path());
    if !report.is_empty() {
        let path = path.into_owned();
        url.set_path(&path);
    }
    if let Some(query) = url.query() {
        let (query, report) = scrubber.scrub_str(query);
        if !report.is_empty() {
            let query = query.into_owned();
            url.set_query(Some(&query));
        }
    }
    url.set_fragment(None);
}

/// Scrubs a breadcrumb's message and data in place.
pub fn scrub_breadcrumb(scrubber: &Scrubber, crumb: &mut Breadcrumb) {
    if let Some(message) = crumb.message.as_mut() {
        scrubber.scrub_string(message);
    }
    scrub_map(scrubber, &mut crumb.data);
}

/// Scrubs a JSON map as one object, so key rules apply to its keys.
fn scrub_map(scrubber: &Scrubber, map: &mut Map<String, Value>) {
    if map.is_empty() {
        return;
    }
    let mut object = Value::Object(std::mem::take(map).into_iter().collect());
    scrubber.scrub_json(&mut object);
    if let Value::Object(object) = object {
        map.extend(object);
    }
}

/// Scrubs a string map (headers, tags, env) as one JSON object.
fn scrub_string_map(scrubber: &Scrubber, map: &mut BTreeMap<String, String>) {
    if map.is_empty() {
        return;
    }
    let mut object = Value::Object(
        std::mem::take(map)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    );
    scrubber.scrub_json(&mut object);
    if let Value::Object(object) = object {
        map.extend(object.into_iter().map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        }));
    }
}

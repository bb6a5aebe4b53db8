//! [`LogLayer`]: formats events as JSON or pretty lines with the request's fields.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::marker::PhantomData;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::LogFormat;
use crate::{RequestContext, TraceIds};

/// Span fields that identify a request; captured from any span that declares one of them.
const REQUEST_KEYS: [&str; 4] = ["request_id", "method", "route", "user_id"];
/// Keys every JSON line starts with; event fields with these names get a `field.` prefix.
const HEADER_KEYS: [&str; 3] = ["timestamp", "level", "target"];
/// Buffers that grew beyond this (one huge event) are given back instead of kept.
const MAX_KEPT_CAPACITY: usize = 64 * 1024;

/// The layer behind [`layer`](super::layer) and [`init`](super::init), without a filter.
///
/// Use it directly to choose ANSI colors for the pretty format or to apply a filter of your
/// own with [`Layer::with_filter`].
pub struct LogLayer<S, W> {
    output: Output<W>,
    _subscriber: PhantomData<fn(S)>,
}

impl<S, W> LogLayer<S, W> {
    /// A layer writing `format` lines to `make_writer` (e.g. `std::io::stdout`), no colors.
    pub fn new(format: LogFormat, make_writer: W) -> Self {
        LogLayer {
            output: Output::new(format, make_writer),
            _subscriber: PhantomData,
        }
    }

    /// Colors the pretty format with ANSI escape codes (ignored by the JSON format).
    pub fn with_ansi(mut self, ansi: bool) -> Self {
        self.output.ansi = ansi;
        self
    }
}

impl<S, W> fmt::Debug for LogLayer<S, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLayer")
            .field("format", &self.output.format)
            .field("ansi", &self.output.ansi)
            .finish_non_exhaustive()
    }
}

/// Where and how lines are written: shared by [`LogLayer`] and obs's own subscriber.
pub(super) struct Output<W> {
    pub(super) format: LogFormat,
    pub(super) make_writer: W,
    pub(super) ansi: bool,
}

impl<W> Output<W> {
    pub(super) fn new(format: LogFormat, make_writer: W) -> Self {
        Output {
            format,
            make_writer,
            ansi: false,
        }
    }
}

impl<W: for<'w> MakeWriter<'w>> Output<W> {
    /// Formats `event` as one line with `info`'s request fields and writes it.
    pub(super) fn write(&self, event: &Event<'_>, info: &RequestInfo<'_>) {
        BUFFERS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut bufs) => {
                self.write_with(&mut bufs, event, info);
                if bufs.line.capacity() > MAX_KEPT_CAPACITY {
                    bufs.line = Vec::new();
                }
                if bufs.scratch.capacity() > MAX_KEPT_CAPACITY {
                    bufs.scratch = String::new();
                }
            }
            // Re-entered (a `Debug` impl logged while being formatted): use fresh buffers.
            Err(_) => self.write_with(&mut Buffers::default(), event, info),
        });
    }

    fn write_with(&self, bufs: &mut Buffers, event: &Event<'_>, info: &RequestInfo<'_>) {
        bufs.line.clear();
        match self.format {
            LogFormat::Json => format_json(bufs, event, info),
            LogFormat::Pretty => format_pretty(bufs, event, info, self.ansi),
        }
        let mut writer = self.make_writer.make_writer_for(event.metadata());
        // Like tracing-subscriber's fmt layer, a failing writer does not fail the program.
        let _ = writer.write_all(&bufs.line);
    }
}

/// Request fields captured from a span, stored in its extensions.
#[derive(Default, Debug, Clone)]
pub(super) struct SpanRequestFields {
    values: [Option<String>; 4],
}

impl SpanRequestFields {
    fn from_context(ctx: &RequestContext) -> Self {
        let info = RequestInfo::from_context(ctx);
        SpanRequestFields {
            values: info.values.map(|v| v.map(str::to_owned)),
        }
    }
}

/// How a span identifies its request, stored in its extensions (or, in obs's own subscriber,
/// its slot).
#[derive(Clone)]
pub(super) enum SpanRequest {
    /// The span was opened inside the scope of the request it names (obs-tower's `request`
    /// span is): read the fields from the shared context instead of copying three strings
    /// per request. Used for events outside the task-local scope, e.g. in a task spawned
    /// with `.in_current_span()`.
    Context(RequestContext),
    /// Values copied from the span's fields (spans opened outside their request's scope).
    Fields(SpanRequestFields),
}

/// Does the span's `request_id` field (a `&str` value) name the request of `id`?
struct NamesRequest<'a> {
    /// Compared as bytes: `RequestId::as_bytes` is free, `as_str` re-checks UTF-8.
    id: &'a [u8],
    same: bool,
}

impl Visit for NamesRequest<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "request_id" {
            self.same = value.as_bytes() == self.id;
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

impl Visit for SpanRequestFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(i) = REQUEST_KEYS.iter().position(|k| *k == field.name()) {
            self.values[i] = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(i) = REQUEST_KEYS.iter().position(|k| *k == field.name()) {
            self.values[i] = Some(format!("{value:?}"));
        }
    }
}

/// What is known about the request an event belongs to.
#[derive(Default)]
pub(super) struct RequestInfo<'a> {
    /// Same order as [`REQUEST_KEYS`].
    values: [Option<&'a str>; 4],
    /// The request's trace ids (`trace_id`, `span_id` on JSON lines), once set.
    trace: Option<TraceIds>,
}

impl<'a> RequestInfo<'a> {
    pub(super) fn from_context(ctx: &'a RequestContext) -> Self {
        RequestInfo {
            values: [
                Some(ctx.request_id().as_str()),
                ctx.method(),
                ctx.route(),
                ctx.user_id(),
            ],
            trace: ctx.trace_ids().copied(),
        }
    }

    fn from_span(fields: &'a SpanRequestFields) -> Self {
        RequestInfo {
            values: [
                fields.values[0].as_deref(),
                fields.values[1].as_deref(),
                fields.values[2].as_deref(),
                fields.values[3].as_deref(),
            ],
            trace: None,
        }
    }
}

/// The per-thread line buffer and scratch space for `Debug` values.
#[derive(Default)]
struct Buffers {
    line: Vec<u8>,
    scratch: String,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

impl SpanRequest {
    /// What a new span says about its request: `None` for spans without request fields.
    pub(super) fn from_new_span(attrs: &Attributes<'_>) -> Option<SpanRequest> {
        let declares = attrs
            .metadata()
            .fields()
            .iter()
            .any(|f| REQUEST_KEYS.contains(&f.name()));
        if !declares {
            return None;
        }
        Some(match RequestContext::current() {
            Some(current) if names_request(attrs, &current) => SpanRequest::Context(current),
            _ => {
                let mut fields = SpanRequestFields::default();
                attrs.record(&mut fields);
                SpanRequest::Fields(fields)
            }
        })
    }

    /// Applies fields recorded on the span after its creation.
    pub(super) fn record(&mut self, values: &Record<'_>) {
        // A field recorded later may differ from the context: copy, then apply it.
        if let SpanRequest::Context(current) = self {
            *self = SpanRequest::Fields(SpanRequestFields::from_context(current));
        }
        if let SpanRequest::Fields(fields) = self {
            values.record(fields);
        }
    }

    /// The request fields for events in this span, if it names a request.
    pub(super) fn info(&self) -> Option<RequestInfo<'_>> {
        match self {
            SpanRequest::Context(owner) => Some(RequestInfo::from_context(owner)),
            SpanRequest::Fields(fields) if fields.values[0].is_some() => {
                Some(RequestInfo::from_span(fields))
            }
            SpanRequest::Fields(_) => None,
        }
    }
}

impl<S, W> Layer<S> for LogLayer<S, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(entry) = SpanRequest::from_new_span(attrs) {
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(entry);
            }
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(entry) = ext.get_mut::<SpanRequest>() {
            entry.record(values);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        RequestContext::with_current(|current| {
            if let Some(current) = current {
                return self
                    .output
                    .write(event, &RequestInfo::from_context(current));
            }
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope {
                    let ext = span.extensions();
                    if let Some(info) = ext.get::<SpanRequest>().and_then(SpanRequest::info) {
                        return self.output.write(event, &info);
                    }
                }
            }
            self.output.write(event, &RequestInfo::default())
        });
    }
}

fn names_request(attrs: &Attributes<'_>, ctx: &RequestContext) -> bool {
    let mut visitor = NamesRequest {
        id: ctx.request_id().as_bytes(),
        same: false,
    };
    attrs.record(&mut visitor);
    visitor.same
}

fn level_str(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

// ----------------------------------------------------------------------------------------- JSON

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn format_json(bufs: &mut Buffers, event: &Event<'_>, info: &RequestInfo<'_>) {
    let meta = event.metadata();
    let out = &mut bufs.line;
    out.extend_from_slice(b"{\"timestamp\":\"");
    let _ = write!(
        out,
        "{}",
        humantime::format_rfc3339_micros(SystemTime::now())
    );
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(level_str(meta.level()).as_bytes());
    out.extend_from_slice(b"\",\"target\":");
    json_str(out, meta.target());

    let mut visitor = JsonVisitor {
        out,
        scratch: &mut bufs.scratch,
        message_pass: true,
        wrote_message: false,
    };
    event.record(&mut visitor);
    if !visitor.wrote_message {
        visitor.out.extend_from_slice(b",\"message\":\"\"");
    }

    let fields = meta.fields();
    for (key, value) in REQUEST_KEYS.iter().zip(info.values) {
        if let Some(value) = value {
            if fields.field(key).is_none() {
                visitor.out.extend_from_slice(b",\"");
                visitor.out.extend_from_slice(key.as_bytes());
                visitor.out.extend_from_slice(b"\":");
                json_str(visitor.out, value);
            }
        }
    }

    if let Some(trace) = &info.trace {
        // Writing to a Vec cannot fail; the ids are hex, no escaping needed.
        if fields.field("trace_id").is_none() {
            let _ = write!(visitor.out, ",\"trace_id\":\"{}\"", trace.trace_id);
        }
        if fields.field("span_id").is_none() {
            let _ = write!(visitor.out, ",\"span_id\":\"{}\"", trace.span_id);
        }
    }

    visitor.message_pass = false;
    event.record(&mut visitor);
    visitor.out.extend_from_slice(b"}\n");
}

/// Writes the `message` field in the first pass and every other field in the second.
struct JsonVisitor<'a> {
    out: &'a mut Vec<u8>,
    scratch: &'a mut String,
    message_pass: bool,
    wrote_message: bool,
}

impl JsonVisitor<'_> {
    /// Writes `,"name":` and returns true if this field belongs to the current pass.
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        let is_message = name == "message";
        if is_message != self.message_pass {
            return false;
        }
        self.wrote_message |= is_message;
        self.out.push(b',');
        if HEADER_KEYS.contains(&name) {
            self.out.extend_from_slice(b"\"field.");
            self.out.extend_from_slice(name.as_bytes());
            self.out.push(b'"');
        } else {
            json_str(self.out, name);
        }
        self.out.push(b':');
        true
    }

    fn number(&mut self, field: &Field, value: impl serde::Serialize) {
        if self.key(field) {
            let _ = serde_json::to_writer(&mut *self.out, &value);
        }
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.number(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.number(field, value);
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.number(field, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field, value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            json_str(self.out, value);
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.key(field) {
            self.scratch.clear();
            write_error_chain(self.scratch, value);
            json_str(self.out, self.scratch);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            self.scratch.clear();
            let _ = write!(self.scratch, "{value:?}");
            json_str(self.out, self.scratch);
        }
    }
}

/// `outer: cause: root cause`.
fn write_error_chain(out: &mut String, err: &(dyn std::error::Error + 'static)) {
    let _ = write!(out, "{err}");
    let mut source = err.source();
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
}

// --------------------------------------------------------------------------------------- pretty

const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

fn level_color(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "\x1b[35m",
        Level::DEBUG => "\x1b[34m",
        Level::INFO => "\x1b[32m",
        Level::WARN => "\x1b[33m",
        Level::ERROR => "\x1b[31m",
    }
}

/// `2026-11-22T03:53:38.123456Z  INFO shop::orders: order placed request_id=… order_id=42`
fn format_pretty(bufs: &mut Buffers, event: &Event<'_>, info: &RequestInfo<'_>, ansi: bool) {
    let meta = event.metadata();
    let mut line = String::with_capacity(0);
    std::mem::swap(&mut line, &mut bufs.scratch);
    line.clear();
    let (dim, bold, reset) = if ansi {
        (DIM, BOLD, RESET)
    } else {
        ("", "", "")
    };
    let color = if ansi { level_color(meta.level()) } else { "" };
    let _ = write!(
        line,
        "{dim}{}{reset} {color}{:>5}{reset} {dim}{}:{reset}",
        humantime::format_rfc3339_micros(SystemTime::now()),
        meta.level().as_str(),
        meta.target(),
    );
    let mut visitor = PrettyVisitor {
        line: &mut line,
        scratch: String::new(),
        message_pass: true,
        dim,
        reset,
    };
    event.record(&mut visitor);
    let fields = meta.fields();
    for (key, value) in REQUEST_KEYS.iter().zip(info.values) {
        if let Some(value) = value {
            if fields.field(key).is_none() {
                let _ = write!(visitor.line, " {bold}{key}{reset}=");
                write_pretty_value(visitor.line, value);
            }
        }
    }
    visitor.message_pass = false;
    event.record(&mut visitor);
    line.push('\n');
    bufs.line.extend_from_slice(line.as_bytes());
    bufs.scratch = line;
}

/// Quotes values with spaces, quotes or `=`; escapes control characters always.
fn write_pretty_value(out: &mut String, value: &str) {
    if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
        let _ = write!(out, "{value:?}");
    } else {
        write_escaped(out, value);
    }
}

/// Copies `s`, escaping control characters (`\n`, `\u{1b}`, ...) so a line stays one line.
fn write_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
}

struct PrettyVisitor<'a> {
    line: &'a mut String,
    scratch: String,
    message_pass: bool,
    dim: &'static str,
    reset: &'static str,
}

impl Visit for PrettyVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let is_message = field.name() == "message";
        if is_message != self.message_pass {
            return;
        }
        if is_message {
            self.line.push(' ');
            write_escaped(self.line, value);
        } else {
            let _ = write!(self.line, " {}{}{}=", self.dim, field.name(), self.reset);
            write_pretty_value(self.line, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut s = std::mem::take(&mut self.scratch);
        s.clear();
        write_error_chain(&mut s, value);
        self.record_str(field, &s);
        self.scratch = s;
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let is_message = field.name() == "message";
        if is_message != self.message_pass {
            return;
        }
        let mut s = std::mem::take(&mut self.scratch);
        s.clear();
        let _ = write!(s, "{value:?}");
        if is_message {
            self.line.push(' ');
        } else {
            let _ = write!(self.line, " {}{}{}=", self.dim, field.name(), self.reset);
        }
        write_escaped(self.line, &s);
        self.scratch = s;
    }
}

//! Typed business metrics for obs.
//!
//! A metric group is a Rust type ([`metric_group!`]); label sets are types ([`label_set!`]);
//! fixed-cardinality label values are enums ([`label_enum!`]). Help text comes from doc
//! comments; units come from the name (`_seconds`, `_bytes`) and histogram buckets from the
//! definition. The same definitions produce the Prometheus/OpenMetrics exposition
//! ([`Registry::encode`]), a markdown catalog, SLO alert/recording rules and a Grafana
//! dashboard ([`generate`]).
//!
//! # Design choices
//!
//! - **Declarative macros, not a derive.** `macro_rules!` reads the doc comments, names and
//!   types it needs and emits `const` assertions, so a bad name (`logins` counter without
//!   `_total`, `latency_ms`, `upload_size_kb`, `CamelCase`) is a **compile error** whose message
//!   is the broken rule ([`naming`]). No proc-macro crate to build. The runtime API
//!   ([`Registry::counter`], ...) applies the same `const fn` and returns a [`RegistryError`].
//! - **Hot path.** A fixed-cardinality family is one `Box<[AtomicU64]>`; `inc(labels)` is
//!   `slots[labels.index()].fetch_add(1)` — no lock, no hash, no allocation. Histograms are
//!   atomic buckets plus the sum as `f64` bits updated by compare-and-swap (no mutex).
//! - **Local handles** ([`Counter::local`], [`Histogram::local`], module [`local`]) for hot
//!   loops and per-worker state: a handle owns one shard of the metric, so an update is a
//!   relaxed load + store with no atomic read-modify-write (below the `lock xadd` floor of a
//!   shared cell). Scrapes add all shards; dropped handles return their shard (values kept)
//!   to a pool for reuse, so counters never go backwards. Memory: one shard per concurrently
//!   live handle.
//! - **Dynamic labels** ([`DynCounter`] & co.) have a series cap with an `__overflow__` series
//!   and an overflow counter, plus idle-series eviction ([`dynamic`]).
//! - **Exposition** goes through prometheus-client's encoder: our storage implements its
//!   `Collector` trait. prometheus-client writes OpenMetrics; the Prometheus 0.0.4 text format
//!   is derived from it ([`registry::openmetrics_to_prometheus`]).
//! - **Exemplars** (opt-in per metric, [`MetricOptions::exemplars`]) carry the current
//!   `request_id` and `trace_id` from [`obs_core::RequestContext`] on counters (one per
//!   series) and fixed-label histograms (one per bucket), in OpenMetrics only, with the label
//!   set kept within OpenMetrics' 128 characters (`request_id` is dropped first). They are
//!   recorded with a `try_lock`, so a contended update skips the exemplar instead of waiting.
//!   Counter exemplars go through prometheus-client's encoder. Histogram exemplars cannot:
//!   its `Exemplar` type has no public constructor and `HistogramWithExemplars` keeps its
//!   exemplars private, so [`Registry::encode`] appends ` # {labels} value timestamp` to
//!   that family's `_bucket` lines itself (the lines themselves are still prometheus-client's
//!   output). Gauges and dynamic histograms refuse exemplars at registration.
//!
//! ```
//! use obs_metrics::{opts, Counter, Format, Histogram, MetricGroup, Registry, Scope};
//!
//! obs_metrics::label_enum! {
//!     /// Kind of asset.
//!     pub enum AssetType { Model = "model", Texture = "texture" }
//! }
//! obs_metrics::label_enum! {
//!     /// Outcome.
//!     pub enum Status { Success = "success", Failure = "failure" }
//! }
//! obs_metrics::label_set! {
//!     /// `type` and `status`.
//!     pub struct Generation { kind as "type": AssetType, status: Status }
//! }
//! obs_metrics::label_set! {
//!     /// `type`.
//!     pub struct Kind { kind as "type": AssetType }
//! }
//! obs_metrics::metric_group! {
//!     /// Asset generation.
//!     pub struct Assets {
//!         /// Total asset generations by type and status.
//!         pub asset_generations_total: Counter<Generation>,
//!         /// Time taken to generate assets.
//!         pub asset_generation_duration_seconds: Histogram<Kind> =
//!             opts().buckets(&[5.0, 10.0, 30.0, 60.0, 120.0, 300.0]),
//!     }
//! }
//!
//! let registry = Registry::new();
//! let assets = Assets::register(&registry).unwrap();
//! assets.asset_generations_total.inc(Generation { kind: AssetType::Model, status: Status::Success });
//! assets.asset_generation_duration_seconds.observe(Kind { kind: AssetType::Model }, 42.0);
//! let text = registry.encode(Format::Prometheus, &[Scope::Business]);
//! assert!(text.contains(r#"asset_generations_total{type="model",status="success"} 1"#));
//! ```
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod dynamic;
pub mod generate;
pub mod group;
pub mod http;
pub mod labels;
pub mod local;
pub mod metric;
pub mod naming;
pub mod process;
pub mod registry;

pub use dynamic::{Clock, DynCounter, DynGauge, DynHistogram, OVERFLOW};
pub use group::{Family, MetricGroup};
pub use labels::{LabelSet, LabelValue};
pub use local::{LocalCounter, LocalHistogram};
pub use metric::{opts, Counter, Gauge, Histogram, HistogramSnapshot, MetricOptions};
pub use naming::MetricType;
pub use registry::{Descriptor, Format, LabelDescriptor, Registry, RegistryError, Scope};

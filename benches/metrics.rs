//! obs-metrics hot path, encoding and HTTP layer overhead, peers side by side in the same
//! groups so ratios come from one run:
//!
//! - `counter_inc` / `histogram_observe`: fixed-cardinality labels (4 methods x 3 statuses),
//!   single thread and 2 threads contending on the same series — obs-metrics vs
//!   prometheus-client `Family` vs `measured` (`CounterVec`/`HistogramVec`); obs-metrics'
//!   shared handle (`Counter::inc`) and its per-owner `local handle` (`Counter::local`: a
//!   relaxed load + store on a shard only that handle writes; in `2threads` each thread owns
//!   its own handle on the same series); `raw AtomicU64 (floor)` / `raw Cell<u64> (no atomic)`
//!   are the same loop with a bare `fetch_add` / a plain increment;
//! - `histogram_observe` also has obs-metrics with exemplars (`request_id` + `trace_id`)
//!   outside a request context and inside one, so the cost of exemplars is visible;
//! - `counter_inc_string_labels`: 3 labels (method, route, status) as prometheus-client users
//!   usually write them (`String` fields, derived `EncodeLabelSet`; label set prebuilt, or
//!   built per call from `&str`s as a middleware does) vs obs-metrics' enum label set, 1 thread
//!   and 2 threads on the same series;
//! - `encode_10k_series`: OpenMetrics text of a 10 000-series counter family, obs-metrics
//!   (through prometheus-client's encoder) vs prometheus-client's own `Family`;
//! - `http_layer`: one request through an axum router bare, with `HttpMetricsLayer`, and with
//!   axum-prometheus' layer.
//!
//! `cargo bench -p obs --features tower,metrics --bench metrics`
//!
//! **How the `1thread` cases of `counter_inc` and `histogram_observe` loop.** Every contender
//! of a run (raw baselines, obs-metrics shared and local, prometheus-client, measured) gets
//! the same loop, chosen with `OBS_BENCH_METRICS_LOOP`:
//!
//! - `sequence` (default): `iter_custom` times `n` updates that walk a fixed sequence of
//!   inputs in order, cycling — the 12 label sets (counters) or the 84 `(label set, value)`
//!   pairs of one period (histograms) — each input through `black_box`. The time per
//!   iteration is the time per update.
//! - `rotate` (the previous method, still selectable): one update per criterion iteration,
//!   label set `i % 12` (histograms: value `i % 7` too), through `black_box`.
//!
//! Both visit the same inputs in the same order. `rotate` adds a per-update index
//! computation (`i % 12` and `i % 7`, multiply-and-shift sequences) and criterion's
//! per-iteration loop to every update: ~12 of the 17 instructions of a local-handle counter
//! increment there, and ~2.4 ns of its ~3 ns in session 3, so it mostly timed the harness
//! for the cheap contenders. `sequence` leaves ~3 instructions of loop and the `black_box`
//! round trip per update. The `2threads` cases are unchanged (one update per iteration, same
//! series, in `contended`) for every contender.
//!
//! Instruction counts per update (deterministic, single thread): `benches/instructions.sh
//! metrics`, which runs this binary in its `OBS_BENCH_COUNT=<case>:<n>` mode (see `count`),
//! with the same loops (`OBS_BENCH_METRICS_LOOP` applies there too).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Bencher, BenchmarkId, Criterion};

mod support;

const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

mod ours {
    obs_metrics::label_enum! {
        /// Method.
        pub enum Method { Get = "GET", Post = "POST", Put = "PUT", Delete = "DELETE" }
    }
    obs_metrics::label_enum! {
        /// Status.
        pub enum Status { Ok = "ok", ClientError = "client_error", ServerError = "server_error" }
    }
    obs_metrics::label_set! {
        /// Labels.
        pub struct Labels { method: Method, status: Status }
    }
    pub const ALL: [Labels; 12] = {
        let m = [Method::Get, Method::Post, Method::Put, Method::Delete];
        let s = [Status::Ok, Status::ClientError, Status::ServerError];
        let mut out = [Labels {
            method: Method::Get,
            status: Status::Ok,
        }; 12];
        let mut i = 0;
        while i < 12 {
            out[i] = Labels {
                method: m[i % 4],
                status: s[i % 3],
            };
            i += 1;
        }
        out
    };
}

mod ours3 {
    obs_metrics::label_enum! {
        /// Method.
        pub enum Method { Get = "GET", Post = "POST", Put = "PUT", Delete = "DELETE" }
    }
    obs_metrics::label_enum! {
        /// Route.
        pub enum Route { Users = "/api/users/{id}", Assets = "/api/assets/{type}/generate", Health = "/health/ready" }
    }
    obs_metrics::label_enum! {
        /// Status class.
        pub enum Class { S2 = "2xx", S4 = "4xx", S5 = "5xx" }
    }
    obs_metrics::label_set! {
        /// Labels.
        pub struct Labels { method: Method, route: Route, status: Class }
    }
    pub fn all() -> [Labels; 12] {
        let m = [Method::Get, Method::Post, Method::Put, Method::Delete];
        let r = [Route::Users, Route::Assets, Route::Health];
        let s = [Class::S2, Class::S4, Class::S5];
        std::array::from_fn(|i| Labels {
            method: m[i % 4],
            route: r[i % 3],
            status: s[(i / 4) % 3],
        })
    }
}

mod pc_str {
    use prometheus_client::encoding::EncodeLabelSet;
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct Labels {
        pub method: String,
        pub route: String,
        pub status: String,
    }
    pub const RAW: [(&str, &str, &str); 12] = {
        let m = ["GET", "POST", "PUT", "DELETE"];
        let r = [
            "/api/users/{id}",
            "/api/assets/{type}/generate",
            "/health/ready",
        ];
        let s = ["2xx", "4xx", "5xx"];
        let mut out = [("", "", ""); 12];
        let mut i = 0;
        while i < 12 {
            out[i] = (m[i % 4], r[i % 3], s[(i / 4) % 3]);
            i += 1;
        }
        out
    };
    pub fn build(raw: (&str, &str, &str)) -> Labels {
        Labels {
            method: raw.0.to_owned(),
            route: raw.1.to_owned(),
            status: raw.2.to_owned(),
        }
    }
}

mod pc {
    use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
    #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
    pub enum Method {
        Get,
        Post,
        Put,
        Delete,
    }
    #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
    pub enum Status {
        Ok,
        ClientError,
        ServerError,
    }
    #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct Labels {
        pub method: Method,
        pub status: Status,
    }
    pub fn all() -> [Labels; 12] {
        let m = [Method::Get, Method::Post, Method::Put, Method::Delete];
        let s = [Status::Ok, Status::ClientError, Status::ServerError];
        std::array::from_fn(|i| Labels {
            method: m[i % 4],
            status: s[i % 3],
        })
    }
}

mod ms {
    use measured::{FixedCardinalityLabel, LabelGroup};
    #[derive(Clone, Copy, Debug, FixedCardinalityLabel)]
    pub enum Method {
        Get,
        Post,
        Put,
        Delete,
    }
    #[derive(Clone, Copy, Debug, FixedCardinalityLabel)]
    pub enum Status {
        Ok,
        ClientError,
        ServerError,
    }
    #[derive(Clone, Copy, LabelGroup)]
    #[label(set = LabelsSet)]
    pub struct Labels {
        pub method: Method,
        pub status: Status,
    }
    pub fn all() -> [Labels; 12] {
        let m = [Method::Get, Method::Post, Method::Put, Method::Delete];
        let s = [Status::Ok, Status::ClientError, Status::ServerError];
        std::array::from_fn(|i| Labels {
            method: m[i % 4],
            status: s[i % 3],
        })
    }
}

/// Per-op time of `op` on this thread while a second thread runs `op` in a loop.
fn contended(iters: u64, op: &(dyn Fn(u64) + Sync)) -> Duration {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                op(i);
                i = i.wrapping_add(1);
            }
        });
        let t = Instant::now();
        for i in 0..iters {
            op(i);
        }
        let el = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        el
    })
}

/// Per-op time of `op` on this thread while a second thread runs `op` in a loop, each thread
/// with its own handle from `make` (local handles are `Send` but not `Sync`).
fn contended_local<H>(
    iters: u64,
    make: &(dyn Fn() -> H + Sync),
    op: &(dyn Fn(&H, u64) + Sync),
) -> Duration {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let h = make();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                op(&h, i);
                i = i.wrapping_add(1);
            }
        });
        let h = make();
        let t = Instant::now();
        for i in 0..iters {
            op(&h, i);
        }
        let el = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        el
    })
}

/// How the single-thread (`1thread`) cases of `counter_inc` and `histogram_observe` drive their
/// updates, chosen with `OBS_BENCH_METRICS_LOOP` (every contender of a run gets the same one;
/// see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loop {
    /// Default (`sequence`): `criterion`'s `iter_custom` times `n` updates that walk a fixed
    /// sequence of inputs in order, cycling (the 12 label sets; for histograms the 84
    /// `(labels, value)` pairs of one period), so the time per iteration is the time per
    /// update with no per-update index arithmetic.
    Sequence,
    /// The previous method (`rotate`): one update per `criterion` iteration, the label set
    /// picked by `i % 12` (histograms: label set `i % 12`, value `i % 7`).
    Rotate,
}

fn loop_mode() -> Loop {
    match std::env::var("OBS_BENCH_METRICS_LOOP").as_deref() {
        Err(_) | Ok("sequence") => Loop::Sequence,
        Ok("rotate") => Loop::Rotate,
        Ok(other) => {
            panic!("OBS_BENCH_METRICS_LOOP is `sequence` (default) or `rotate`, not {other:?}")
        }
    }
}

/// The inputs of the `1thread` cases in the order both methods visit them: label set `i % N`
/// for `i = 1, 2, ...` (one period).
fn counter_sequence<T: Copy, const N: usize>(labels: &[T; N]) -> [T; N] {
    std::array::from_fn(|k| labels[(k + 1) % N])
}

/// `(label set, value)` pairs in the order both methods visit them: `(labels[i % N],
/// values[i % M])` for `i = 1, 2, ...` (one period, `N * M` pairs).
fn histogram_sequence<T: Copy, const N: usize, const M: usize>(
    labels: &[T; N],
    values: &[f64; M],
) -> Vec<(T, f64)> {
    (1..=N * M)
        .map(|i| (labels[i % N], values[i % M]))
        .collect()
}

/// `n` updates, `op` on the elements of `seq` in order, cycling; the time they took. Each input
/// goes through `black_box`, so the compiler knows nothing of it (as with the `rotate` loop).
#[inline(always)]
fn run_sequence<T: Copy>(n: u64, seq: &[T], mut op: impl FnMut(T)) -> Duration {
    let seq = black_box(seq);
    let start = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(seq.len() as u64) as usize;
        for x in &seq[..k] {
            op(black_box(*x));
        }
        left -= k as u64;
    }
    start.elapsed()
}

/// One `counter_inc` `1thread` case: `op(labels)` per update (see [`Loop`]).
fn counter_1thread<T: Copy, const N: usize>(
    b: &mut Bencher<'_>,
    mode: Loop,
    labels: &[T; N],
    op: impl Fn(T),
) {
    match mode {
        Loop::Sequence => {
            let seq = counter_sequence(labels);
            b.iter_custom(|n| run_sequence(n, &seq, &op))
        }
        Loop::Rotate => {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % N;
                op(black_box(labels[i]))
            })
        }
    }
}

/// One `histogram_observe` `1thread` case: `op(labels, value)` per observation (see [`Loop`]).
fn histogram_1thread<T: Copy, const N: usize, const M: usize>(
    b: &mut Bencher<'_>,
    mode: Loop,
    labels: &[T; N],
    values: &[f64; M],
    op: impl Fn(T, f64),
) {
    match mode {
        Loop::Sequence => {
            let seq = histogram_sequence(labels, values);
            b.iter_custom(|n| run_sequence(n, &seq, |(l, v)| op(l, v)))
        }
        Loop::Rotate => {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                op(black_box(labels[i % N]), black_box(values[i % M]))
            })
        }
    }
}

fn counters(c: &mut Criterion) {
    let registry = obs_metrics::Registry::new();
    let our: obs_metrics::Counter<ours::Labels> = registry
        .counter(
            "bench_total",
            "Bench.",
            obs_metrics::Scope::Business,
            obs_metrics::opts(),
        )
        .unwrap();
    let pcf = prometheus_client::metrics::family::Family::<
        pc::Labels,
        prometheus_client::metrics::counter::Counter,
    >::default();
    let msv = measured::CounterVec::with_label_set(ms::LabelsSet::new());
    let (ol, pl, ml) = (ours::ALL, pc::all(), ms::all());

    let mut g = c.benchmark_group("counter_inc");
    let mode = loop_mode();
    // The floor: one relaxed atomic add on a flat array (what obs-metrics compiles down to).
    let raw: Vec<std::sync::atomic::AtomicU64> = (0..12)
        .map(|_| std::sync::atomic::AtomicU64::new(0))
        .collect();
    let idx: [usize; 12] = std::array::from_fn(|i| i);
    g.bench_function(BenchmarkId::new("raw AtomicU64 (floor)", "1thread"), |b| {
        counter_1thread(b, mode, &idx, |i| {
            raw[i].fetch_add(1, Ordering::Relaxed);
        })
    });
    // The harness floor: the same loop with a plain (non-atomic) increment, which is what a
    // local handle's relaxed load + store compiles to.
    let plain: Vec<std::cell::Cell<u64>> = (0..12).map(|_| std::cell::Cell::new(0)).collect();
    g.bench_function(
        BenchmarkId::new("raw Cell<u64> (no atomic)", "1thread"),
        |b| {
            counter_1thread(b, mode, &idx, |i| {
                let c = &plain[i];
                c.set(c.get() + 1)
            })
        },
    );
    g.bench_function(BenchmarkId::new("obs-metrics", "1thread"), |b| {
        counter_1thread(b, mode, &ol, |l| our.inc(l))
    });
    g.bench_function(
        BenchmarkId::new("obs-metrics local handle", "1thread"),
        |b| {
            let local = our.local();
            counter_1thread(b, mode, &ol, |l| local.inc(l))
        },
    );
    g.bench_function(BenchmarkId::new("prometheus-client", "1thread"), |b| {
        counter_1thread(b, mode, &pl, |l| {
            pcf.get_or_create(&l).inc();
        })
    });
    g.bench_function(BenchmarkId::new("measured", "1thread"), |b| {
        counter_1thread(b, mode, &ml, |l| msv.inc(l))
    });
    g.bench_function(BenchmarkId::new("obs-metrics", "2threads"), |b| {
        b.iter_custom(|n| contended(n, &|_| our.inc(black_box(ol[0]))))
    });
    g.bench_function(
        BenchmarkId::new("obs-metrics local handle", "2threads"),
        |b| b.iter_custom(|n| contended_local(n, &|| our.local(), &|h, _| h.inc(black_box(ol[0])))),
    );
    g.bench_function(BenchmarkId::new("prometheus-client", "2threads"), |b| {
        b.iter_custom(|n| {
            contended(n, &|_| {
                pcf.get_or_create(black_box(&pl[0])).inc();
            })
        })
    });
    g.bench_function(BenchmarkId::new("measured", "2threads"), |b| {
        b.iter_custom(|n| contended(n, &|_| msv.inc(black_box(ml[0]))))
    });
    g.finish();
}

fn string_label_counters(c: &mut Criterion) {
    let registry = obs_metrics::Registry::new();
    let our: obs_metrics::Counter<ours3::Labels> = registry
        .counter(
            "bench3_total",
            "Bench.",
            obs_metrics::Scope::Business,
            obs_metrics::opts(),
        )
        .unwrap();
    let pcf = prometheus_client::metrics::family::Family::<
        pc_str::Labels,
        prometheus_client::metrics::counter::Counter,
    >::default();
    let ol = ours3::all();
    let pl: Vec<pc_str::Labels> = pc_str::RAW.iter().map(|r| pc_str::build(*r)).collect();
    // Same series on both sides.
    our.inc(ol[0]);
    pcf.get_or_create(&pc_str::build(pc_str::RAW[0])).inc();
    assert_eq!(our.get(ol[0]), pcf.get_or_create(&pl[0]).get());

    let mut g = c.benchmark_group("counter_inc_string_labels");
    g.bench_function(BenchmarkId::new("obs-metrics", "1thread"), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % 12;
            our.inc(black_box(ol[i]))
        })
    });
    g.bench_function(
        BenchmarkId::new("prometheus-client prebuilt", "1thread"),
        |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % 12;
                pcf.get_or_create(black_box(&pl[i])).inc();
            })
        },
    );
    g.bench_function(
        BenchmarkId::new("prometheus-client built per call", "1thread"),
        |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % 12;
                pcf.get_or_create(&pc_str::build(black_box(pc_str::RAW[i])))
                    .inc();
            })
        },
    );
    g.bench_function(BenchmarkId::new("obs-metrics", "2threads"), |b| {
        b.iter_custom(|n| contended(n, &|_| our.inc(black_box(ol[0]))))
    });
    g.bench_function(
        BenchmarkId::new("prometheus-client prebuilt", "2threads"),
        |b| {
            b.iter_custom(|n| {
                contended(n, &|_| {
                    pcf.get_or_create(black_box(&pl[0])).inc();
                })
            })
        },
    );
    g.bench_function(
        BenchmarkId::new("prometheus-client built per call", "2threads"),
        |b| {
            b.iter_custom(|n| {
                contended(n, &|_| {
                    pcf.get_or_create(&pc_str::build(black_box(pc_str::RAW[0])))
                        .inc();
                })
            })
        },
    );
    g.finish();
}

fn histograms(c: &mut Criterion) {
    let registry = obs_metrics::Registry::new();
    let with_exemplars: obs_metrics::Histogram<ours::Labels> = registry
        .histogram(
            "bench_ex_seconds",
            "Bench.",
            obs_metrics::Scope::Business,
            obs_metrics::opts().buckets(&BUCKETS).exemplars(),
        )
        .unwrap();
    let request = obs_core::RequestContext::new(obs_core::RequestId::generate());
    request.set_trace_ids(obs_core::TraceIds {
        trace_id: obs_core::TraceId([0xab; 16]),
        span_id: obs_core::SpanId([1; 8]),
    });
    // The in-request case really records exemplars.
    request
        .clone()
        .sync_scope(|| with_exemplars.observe(ours::ALL[0], 0.3));
    let om = registry.encode(
        obs_metrics::Format::OpenMetrics,
        &[obs_metrics::Scope::Business],
    );
    assert!(om.contains(" # {request_id=\""), "exemplars are recorded");
    let our: obs_metrics::Histogram<ours::Labels> = registry
        .histogram(
            "bench_seconds",
            "Bench.",
            obs_metrics::Scope::Business,
            obs_metrics::opts().buckets(&BUCKETS),
        )
        .unwrap();
    fn mk() -> prometheus_client::metrics::histogram::Histogram {
        prometheus_client::metrics::histogram::Histogram::new(BUCKETS)
    }
    let pcf = prometheus_client::metrics::family::Family::<
        pc::Labels,
        prometheus_client::metrics::histogram::Histogram,
    >::new_with_constructor(mk as fn() -> _);
    let msv = measured::HistogramVec::with_label_set_and_metadata(
        ms::LabelsSet::new(),
        measured::metric::histogram::Thresholds::with_buckets(BUCKETS),
    );
    let (ol, pl, ml) = (ours::ALL, pc::all(), ms::all());
    let values = [0.003, 0.02, 0.07, 0.3, 0.9, 4.0, 12.0];

    let mut g = c.benchmark_group("histogram_observe");
    let mode = loop_mode();
    g.bench_function(BenchmarkId::new("obs-metrics", "1thread"), |b| {
        histogram_1thread(b, mode, &ol, &values, |l, v| our.observe(l, v))
    });
    g.bench_function(
        BenchmarkId::new("obs-metrics local handle", "1thread"),
        |b| {
            let local = our.local();
            histogram_1thread(b, mode, &ol, &values, |l, v| local.observe(l, v))
        },
    );
    g.bench_function(
        BenchmarkId::new("obs-metrics +exemplars, no request", "1thread"),
        |b| histogram_1thread(b, mode, &ol, &values, |l, v| with_exemplars.observe(l, v)),
    );
    g.bench_function(
        BenchmarkId::new("obs-metrics +exemplars, in request", "1thread"),
        |b| {
            request.clone().sync_scope(|| {
                histogram_1thread(b, mode, &ol, &values, |l, v| with_exemplars.observe(l, v))
            })
        },
    );
    g.bench_function(BenchmarkId::new("prometheus-client", "1thread"), |b| {
        histogram_1thread(b, mode, &pl, &values, |l, v| {
            pcf.get_or_create(&l).observe(v)
        })
    });
    g.bench_function(BenchmarkId::new("measured", "1thread"), |b| {
        histogram_1thread(b, mode, &ml, &values, |l, v| msv.observe(l, v))
    });
    g.bench_function(BenchmarkId::new("obs-metrics", "2threads"), |b| {
        b.iter_custom(|n| {
            contended(n, &|i| {
                our.observe(black_box(ol[0]), values[(i % 7) as usize])
            })
        })
    });
    g.bench_function(
        BenchmarkId::new("obs-metrics local handle", "2threads"),
        |b| {
            b.iter_custom(|n| {
                contended_local(n, &|| our.local(), &|h, i| {
                    h.observe(black_box(ol[0]), values[(i % 7) as usize])
                })
            })
        },
    );
    g.bench_function(BenchmarkId::new("prometheus-client", "2threads"), |b| {
        b.iter_custom(|n| {
            contended(n, &|i| {
                pcf.get_or_create(black_box(&pl[0]))
                    .observe(values[(i % 7) as usize])
            })
        })
    });
    g.bench_function(BenchmarkId::new("measured", "2threads"), |b| {
        b.iter_custom(|n| {
            contended(n, &|i| {
                msv.observe(black_box(ml[0]), values[(i % 7) as usize])
            })
        })
    });
    g.finish();
}

fn encoding(c: &mut Criterion) {
    use obs_metrics::{Format, Scope};
    let registry = obs_metrics::Registry::new();
    let our: obs_metrics::DynCounter<2> = registry
        .dyn_counter(
            "bench_requests_total",
            "Bench.",
            Scope::Business,
            obs_metrics::opts()
                .labels(&["tenant", "endpoint"])
                .max_series(20_000),
        )
        .unwrap();
    let mut pc_registry = prometheus_client::registry::Registry::default();
    let pcf = prometheus_client::metrics::family::Family::<
        Vec<(String, String)>,
        prometheus_client::metrics::counter::Counter,
    >::default();
    pc_registry.register("bench_requests", "Bench.", pcf.clone());
    for t in 0..100 {
        for e in 0..100 {
            let (t, e) = (format!("tenant-{t}"), format!("/endpoint/{e}"));
            our.inc_by([&t, &e], 7);
            pcf.get_or_create(&vec![("tenant".into(), t), ("endpoint".into(), e)])
                .inc_by(7);
        }
    }
    let om = registry.encode(Format::OpenMetrics, &[Scope::Business]);
    let mut pc_om = String::new();
    prometheus_client::encoding::text::encode(&mut pc_om, &pc_registry).unwrap();
    assert_eq!(om.lines().count(), pc_om.lines().count());

    let mut g = c.benchmark_group("encode_10k_series");
    g.bench_function("obs-metrics/openmetrics", |b| {
        b.iter(|| registry.encode(Format::OpenMetrics, &[Scope::Business]))
    });
    g.bench_function("prometheus-client/openmetrics", |b| {
        b.iter(|| {
            let mut s = String::new();
            prometheus_client::encoding::text::encode(&mut s, &pc_registry).unwrap();
            s
        })
    });
    g.bench_function("obs-metrics/prometheus-text", |b| {
        b.iter(|| registry.encode(Format::Prometheus, &[Scope::Business]))
    });
    g.finish();
}

fn http_layer(c: &mut Criterion) {
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = || Router::new().route("/users/{id}", get(|| async { "user" }));
    let bare = base();
    let registry = obs_metrics::Registry::new();
    let http = obs_metrics::http::HttpMetrics::register(&registry).unwrap();
    let with_ours = base().layer(obs_tower::metrics::HttpMetricsLayer::new(http.clone()));
    // axum-prometheus spawns its upkeep task when the handle is built: needs a runtime.
    let _enter = rt.enter();
    let (prom_layer, _handle) = axum_prometheus::PrometheusMetricLayer::pair();
    let with_axum_prometheus = base().layer(prom_layer);

    let req = || Request::get("/users/42").body(Body::empty()).unwrap();
    use http::Request;
    // The layer records (checked below even when a filter skips this group).
    rt.block_on(with_ours.clone().oneshot(req())).unwrap();
    let mut g = c.benchmark_group("http_layer");
    for (name, app) in [
        ("bare", bare),
        ("obs-tower HttpMetricsLayer", with_ours),
        ("axum-prometheus", with_axum_prometheus),
    ] {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let app = app.clone();
                async move { app.oneshot(req()).await.unwrap() }
            })
        });
    }
    g.finish();
    assert!(
        http.requests(
            obs_metrics::http::HttpMethod::Get,
            Some("/users/{id}"),
            obs_metrics::http::StatusClass::Success
        ) > 0
    );
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

/// Instruction-count mode (`OBS_BENCH_COUNT=<case>:<n>`, see `support::count_mode`): `n`
/// single-thread updates of one case, the same loop as its `1thread` criterion case (labels
/// rotated over the 12 series, histogram values over 7), then exit. `benches/instructions.sh
/// metrics` runs it under callgrind at two `n`: the difference / Δn is instructions per update.
fn count(case: &str, n: u64) {
    let registry = obs_metrics::Registry::new();
    let counter = || -> obs_metrics::Counter<ours::Labels> {
        registry
            .counter(
                "count_total",
                "Count.",
                obs_metrics::Scope::Business,
                obs_metrics::opts(),
            )
            .unwrap()
    };
    let histogram = || -> obs_metrics::Histogram<ours::Labels> {
        registry
            .histogram(
                "count_seconds",
                "Count.",
                obs_metrics::Scope::Business,
                obs_metrics::opts().buckets(&BUCKETS),
            )
            .unwrap()
    };
    let (ol, pl, ml) = (ours::ALL, pc::all(), ms::all());
    let values = [0.003, 0.02, 0.07, 0.3, 0.9, 4.0, 12.0];
    let mode = loop_mode();
    let idx: [usize; 12] = std::array::from_fn(|i| i);
    // The same loops as the criterion cases (generic, so each case's update inlines into its
    // loop as there).
    match case {
        "counter/raw" => {
            let raw: Vec<std::sync::atomic::AtomicU64> = (0..12)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect();
            drive_counter(n, mode, &idx, |i| {
                raw[i].fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(
                raw.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>(),
                n
            );
        }
        "counter/raw-cell" => {
            let plain: Vec<std::cell::Cell<u64>> =
                (0..12).map(|_| std::cell::Cell::new(0)).collect();
            drive_counter(n, mode, &idx, |i| plain[i].set(plain[i].get() + 1));
            assert_eq!(plain.iter().map(std::cell::Cell::get).sum::<u64>(), n);
        }
        "counter/shared" => {
            let c = counter();
            drive_counter(n, mode, &ol, |l| c.inc(l));
            assert_eq!(ol.iter().map(|l| c.get(*l)).sum::<u64>(), n);
        }
        "counter/local" => {
            let c = counter();
            let local = c.local();
            drive_counter(n, mode, &ol, |l| local.inc(l));
            assert_eq!(ol.iter().map(|l| c.get(*l)).sum::<u64>(), n);
        }
        "counter/prometheus-client" => {
            let pcf = prometheus_client::metrics::family::Family::<
                pc::Labels,
                prometheus_client::metrics::counter::Counter,
            >::default();
            drive_counter(n, mode, &pl, |l| {
                pcf.get_or_create(&l).inc();
            });
            assert_eq!(
                pl.iter().map(|l| pcf.get_or_create(l).get()).sum::<u64>(),
                n
            );
        }
        "counter/measured" => {
            let msv = measured::CounterVec::with_label_set(ms::LabelsSet::new());
            drive_counter(n, mode, &ml, |l| msv.inc(l));
        }
        "histogram/shared" => {
            let h = histogram();
            drive_histogram(n, mode, &ol, &values, |l, v| h.observe(l, v));
            assert_eq!(ol.iter().map(|l| h.snapshot(*l).count).sum::<u64>(), n);
        }
        "histogram/local" => {
            let h = histogram();
            let local = h.local();
            drive_histogram(n, mode, &ol, &values, |l, v| local.observe(l, v));
            assert_eq!(ol.iter().map(|l| h.snapshot(*l).count).sum::<u64>(), n);
        }
        "histogram/prometheus-client" => {
            let pcf = prometheus_client::metrics::family::Family::<
                pc::Labels,
                prometheus_client::metrics::histogram::Histogram,
            >::new_with_constructor(|| {
                prometheus_client::metrics::histogram::Histogram::new(BUCKETS)
            });
            drive_histogram(n, mode, &pl, &values, |l, v| {
                pcf.get_or_create(&l).observe(v)
            });
        }
        "histogram/measured" => {
            let msv = measured::HistogramVec::with_label_set_and_metadata(
                ms::LabelsSet::new(),
                measured::metric::histogram::Thresholds::with_buckets(BUCKETS),
            );
            drive_histogram(n, mode, &ml, &values, |l, v| msv.observe(l, v));
        }
        other => panic!("unknown case {other:?}"),
    }
}

/// `n` updates of a `counter_inc` `1thread` case, the loop criterion times (count mode).
fn drive_counter<T: Copy, const N: usize>(n: u64, mode: Loop, labels: &[T; N], op: impl Fn(T)) {
    match mode {
        Loop::Sequence => {
            run_sequence(n, &counter_sequence(labels), op);
        }
        Loop::Rotate => {
            let mut i = 0;
            for _ in 0..n {
                i = (i + 1) % N;
                op(black_box(labels[i]));
            }
        }
    }
}

/// `n` observations of a `histogram_observe` `1thread` case, the loop criterion times.
fn drive_histogram<T: Copy, const N: usize, const M: usize>(
    n: u64,
    mode: Loop,
    labels: &[T; N],
    values: &[f64; M],
    op: impl Fn(T, f64),
) {
    match mode {
        Loop::Sequence => {
            run_sequence(n, &histogram_sequence(labels, values), |(l, v)| op(l, v));
        }
        Loop::Rotate => {
            let mut i = 0;
            for _ in 0..n {
                i += 1;
                op(black_box(labels[i % N]), black_box(values[i % M]));
            }
        }
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = counters, string_label_counters, histograms, encoding, http_layer
}

fn main() {
    if let Some((case, n)) = support::count_mode() {
        count(&case, n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! Every validation path of every variable: valid, invalid, unset.

use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[track_caller]
fn ok(pairs: &[(&str, &str)]) -> Config {
    load(pairs).unwrap_or_else(|e| panic!("{pairs:?} should be valid: {e}"))
}

/// The single error `pairs` produce; it must be about `var`.
#[track_caller]
fn err(pairs: &[(&str, &str)], var: &str) -> String {
    let errors = match load(pairs) {
        Ok(c) => panic!("{pairs:?} should be invalid, got {c:?}"),
        Err(e) => e,
    };
    assert_eq!(errors.len(), 1, "{errors}");
    let e = &errors.errors()[0];
    assert_eq!(e.var(), var, "{e}");
    e.to_string()
}

#[test]
fn defaults_when_nothing_is_set() {
    let c = ok(&[]);
    assert_eq!(c, Config::default());
    assert_eq!(c.server.port, 3000);
    assert_eq!(c.log.filter, "info");
    assert_eq!(c.log.format, LogFormat::Json);
    assert!(c.log.log_requests);
    assert!(!c.log.log_health_requests);
    assert_eq!(c.sentry.dsn, None);
    assert!(!c.sentry.is_enabled());
    assert_eq!(c.sentry.environment, "production");
    assert_eq!(c.sentry.release, None);
    assert_eq!(c.sentry.traces_sample_rate, 0.1);
    assert_eq!(c.redis, None);
    assert_eq!(c.database, None);
    assert_eq!(c.rate_limit.max, 5);
    assert_eq!(c.rate_limit.window, Duration::from_secs(60));
    assert!(!c.telemetry.enabled);
    assert_eq!(c.metrics_api, None);
    assert_eq!(c.health.token, None);
    assert!(!c.otel.sdk_disabled);
    assert_eq!(c.otel.service_name, None);
    assert!(c.otel.resource_attributes.is_empty());
    assert_eq!(c.otel.exporter_otlp_endpoint, None);
    assert!(!c.otel.export_enabled());
    assert_eq!(c.otel.exporter_otlp_protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(c.otel.traces_sampler, TracesSampler::ParentBasedAlwaysOn);
    assert_eq!(c.otel.sampler_ratio(), None);
}

#[test]
fn empty_or_blank_values_count_as_unset() {
    for blank in ["", "   ", "\t"] {
        let pairs: Vec<(&str, &str)> = vars::ALL.iter().map(|v| (*v, blank)).collect();
        assert_eq!(ok(&pairs), Config::default(), "blank {blank:?}");
    }
}

#[test]
fn surrounding_whitespace_is_ignored() {
    let c = ok(&[("PORT", " 8080 "), ("LOG_FORMAT", "pretty\n")]);
    assert_eq!(c.server.port, 8080);
    assert_eq!(c.log.format, LogFormat::Pretty);
}

#[test]
fn port() {
    assert_eq!(ok(&[("PORT", "8080")]).server.port, 8080);
    assert_eq!(ok(&[("PORT", "0")]).server.port, 0);
    assert_eq!(ok(&[("PORT", "65535")]).server.port, 65535);
    assert_eq!(
        err(&[("PORT", "70000")], "PORT"),
        r#"PORT must be a port number from 0 to 65535, got "70000""#
    );
    for bad in ["abc", "-1", "80.5"] {
        err(&[("PORT", bad)], "PORT");
    }
}

#[test]
fn log_level_maps_fatal_to_error() {
    for (given, filter) in [
        ("fatal", "error"),
        ("FATAL", "error"),
        ("error", "error"),
        ("warn", "warn"),
        ("Info", "info"),
        ("debug", "debug"),
        ("trace", "trace"),
    ] {
        assert_eq!(ok(&[("LOG_LEVEL", given)]).log.filter, filter, "{given}");
    }
    assert_eq!(
        err(&[("LOG_LEVEL", "verbose")], "LOG_LEVEL"),
        r#"LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, got "verbose""#
    );
}

#[test]
fn rust_log_wins_over_log_level() {
    let c = ok(&[
        ("LOG_LEVEL", "warn"),
        ("RUST_LOG", "info,sqlx=warn,my_app=debug"),
    ]);
    assert_eq!(c.log.filter, "info,sqlx=warn,my_app=debug");
    assert_eq!(ok(&[("RUST_LOG", "debug")]).log.filter, "debug");
    let msg = err(&[("RUST_LOG", "info,my_app=loud")], "RUST_LOG");
    assert!(
        msg.starts_with("RUST_LOG must be a tracing EnvFilter directive like info,my_crate=debug"),
        "{msg}"
    );
    assert!(msg.ends_with(r#"got "info,my_app=loud""#), "{msg}");
    // An invalid LOG_LEVEL is reported even when RUST_LOG wins.
    err(&[("LOG_LEVEL", "loud"), ("RUST_LOG", "info")], "LOG_LEVEL");
}

#[test]
fn log_format() {
    assert_eq!(ok(&[("LOG_FORMAT", "json")]).log.format, LogFormat::Json);
    assert_eq!(
        ok(&[("LOG_FORMAT", "PRETTY")]).log.format,
        LogFormat::Pretty
    );
    assert_eq!(
        err(&[("LOG_FORMAT", "xml")], "LOG_FORMAT"),
        r#"LOG_FORMAT must be json or pretty, got "xml""#
    );
}

#[test]
fn booleans_accept_every_spelling_and_reject_others() {
    type Get = fn(&Config) -> bool;
    let cases: [(&str, Get, bool); 4] = [
        ("LOG_REQUESTS", |c| c.log.log_requests, true),
        ("LOG_HEALTH_REQUESTS", |c| c.log.log_health_requests, false),
        ("TELEMETRY_ENABLED", |c| c.telemetry.enabled, false),
        ("OTEL_SDK_DISABLED", |c| c.otel.sdk_disabled, false),
    ];
    for (var, get, default) in cases {
        assert_eq!(get(&ok(&[])), default, "{var} default");
        for t in ["true", "TRUE", "1", "yes", "Yes", "on", "ON"] {
            assert!(get(&ok(&[(var, t)])), "{var}={t}");
        }
        for f in ["false", "False", "0", "no", "NO", "off", "Off"] {
            assert!(!get(&ok(&[(var, f)])), "{var}={f}");
        }
        for bad in ["maybe", "2", "y", "truee"] {
            assert_eq!(
                err(&[(var, bad)], var),
                format!(
                    r#"{var} must be a boolean (true/false, 1/0, yes/no, on/off), got "{bad}""#
                )
            );
        }
    }
}

#[test]
fn sentry_dsn_is_validated_and_never_echoed() {
    for dsn in [
        "https://abc123@o42.ingest.sentry.io/4505",
        "http://key@localhost:8000/1",
        "https://public:secret@sentry.example.com/path/7",
    ] {
        let c = ok(&[("SENTRY_DSN", dsn)]);
        assert_eq!(c.sentry.dsn.as_ref().unwrap().expose(), dsn);
        assert!(c.sentry.is_enabled());
        assert!(!format!("{c:?}").contains(dsn));
    }
    for bad in [
        "not a url",
        "https://sentry.io/42",
        "https://key@sentry.io/",
        "ftp://key@sentry.io/42",
        "https://topsecretkey@",
    ] {
        let msg = err(&[("SENTRY_DSN", bad)], "SENTRY_DSN");
        assert_eq!(
            msg,
            format!(
                "SENTRY_DSN must be a Sentry DSN like https://<public_key>@<host>/<project_id>, \
                 got a secret value of {} bytes (not shown)",
                bad.len()
            )
        );
    }
}

#[test]
fn sentry_environment() {
    assert_eq!(
        ok(&[("SENTRY_ENVIRONMENT", "staging")]).sentry.environment,
        "staging"
    );
    let long = "e".repeat(65);
    for bad in ["prod/eu", "has space", "None", long.as_str(), "a\nb"] {
        let msg = err(&[("SENTRY_ENVIRONMENT", bad)], "SENTRY_ENVIRONMENT");
        assert!(
            msg.starts_with("SENTRY_ENVIRONMENT must be an environment name of at most 64 bytes")
        );
    }
    assert!(!err(&[("SENTRY_ENVIRONMENT", "a\nb")], "SENTRY_ENVIRONMENT").contains('\n'));
}

#[test]
fn sentry_release() {
    assert_eq!(
        ok(&[("SENTRY_RELEASE", "my-app@1.2.3+abc")])
            .sentry
            .release
            .as_deref(),
        Some("my-app@1.2.3+abc")
    );
    let long = "r".repeat(201);
    for bad in ["a/b", ".", "..", "a\tb", long.as_str()] {
        let msg = err(&[("SENTRY_RELEASE", bad)], "SENTRY_RELEASE");
        assert!(
            msg.starts_with("SENTRY_RELEASE must be a release name"),
            "{msg}"
        );
    }
}

#[test]
fn sentry_traces_sample_rate() {
    for (given, want) in [("0", 0.0), ("1", 1.0), ("0.25", 0.25), ("1.0", 1.0)] {
        assert_eq!(
            ok(&[("SENTRY_TRACES_SAMPLE_RATE", given)])
                .sentry
                .traces_sample_rate,
            want
        );
    }
    assert_eq!(
        err(
            &[("SENTRY_TRACES_SAMPLE_RATE", "1.5")],
            "SENTRY_TRACES_SAMPLE_RATE"
        ),
        r#"SENTRY_TRACES_SAMPLE_RATE must be a number between 0 and 1, got "1.5""#
    );
    for bad in ["-0.1", "abc", "NaN", "inf", "10%"] {
        err(
            &[("SENTRY_TRACES_SAMPLE_RATE", bad)],
            "SENTRY_TRACES_SAMPLE_RATE",
        );
    }
}

#[test]
fn redis_url() {
    for url in [
        "redis://localhost:6379",
        "redis://127.0.0.1:6379/2",
        "rediss://user:pw@cache.example.com:6380/0",
        "unix:///run/redis.sock",
        "redis+unix:///run/redis.sock?db=1",
    ] {
        let c = ok(&[("REDIS_URL", url)]);
        assert_eq!(c.redis.unwrap().url(), url);
    }
    for bad in ["http://cache:6379", "not a url", "redis://", "cache:6379"] {
        let msg = err(&[("REDIS_URL", bad)], "REDIS_URL");
        assert!(
            msg.starts_with(
                "REDIS_URL must be a redis://, rediss://, redis+unix:// or unix:// URL, got"
            ),
            "{msg}"
        );
    }
}

#[test]
fn redis_url_password_is_masked() {
    let msg = err(&[("REDIS_URL", "http://:hunter2@cache:6379")], "REDIS_URL");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.ends_with(r#"got "http://***@cache:6379""#), "{msg}");
    // '@' without a scheme: unclear where the secret is, so only the length is shown.
    let msg = err(&[("REDIS_URL", "hunter2@cache")], "REDIS_URL");
    assert!(
        msg.ends_with("got a secret value of 13 bytes (not shown)"),
        "{msg}"
    );

    let c = ok(&[("REDIS_URL", "redis://:hunter2@cache:6379/0")]);
    let redis = c.redis.as_ref().unwrap();
    assert_eq!(redis.redacted_url(), "redis://:***@cache:6379/0");
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn redis_url_wins_and_takes_redis_password_when_it_has_none() {
    let c = ok(&[
        ("REDIS_URL", "redis://cache:6379"),
        ("REDIS_HOST", "ignored"),
        ("REDIS_PORT", "1234"),
        ("REDIS_PASSWORD", "pw"),
    ]);
    assert_eq!(c.redis.unwrap().url(), "redis://:pw@cache:6379");
    let c = ok(&[
        ("REDIS_URL", "redis://:own@cache:6379"),
        ("REDIS_PASSWORD", "other"),
    ]);
    assert_eq!(c.redis.unwrap().url(), "redis://:own@cache:6379");
}

#[test]
fn redis_host_port_password_build_a_url() {
    let url = |pairs: &[(&str, &str)]| ok(pairs).redis.unwrap().url().to_owned();
    assert_eq!(
        url(&[("REDIS_HOST", "cache.internal")]),
        "redis://cache.internal:6379"
    );
    assert_eq!(url(&[("REDIS_PORT", "6380")]), "redis://localhost:6380");
    assert_eq!(
        url(&[("REDIS_PASSWORD", "pw")]),
        "redis://:pw@localhost:6379"
    );
    assert_eq!(url(&[("REDIS_HOST", "::1")]), "redis://[::1]:6379");
    assert_eq!(url(&[("REDIS_HOST", "[::1]")]), "redis://[::1]:6379");
    assert_eq!(
        url(&[("REDIS_HOST", "10.0.0.5"), ("REDIS_PORT", "7000")]),
        "redis://10.0.0.5:7000"
    );
    // Special characters in the password are percent-encoded and round-trip.
    let built = url(&[("REDIS_PASSWORD", "p@ss:w/rd#1")]);
    let parsed = url::Url::parse(&built).unwrap();
    assert_eq!(
        percent_encoding::percent_decode_str(parsed.password().unwrap())
            .decode_utf8()
            .unwrap(),
        "p@ss:w/rd#1"
    );
    assert_eq!(parsed.host_str(), Some("localhost"));

    for bad in ["bad host", "a/b", "user@host"] {
        assert_eq!(
            err(&[("REDIS_HOST", bad)], "REDIS_HOST"),
            format!(r#"REDIS_HOST must be a host name or IP address, got "{bad}""#)
        );
    }
    for bad in ["0", "65536", "http"] {
        assert_eq!(
            err(&[("REDIS_PORT", bad)], "REDIS_PORT"),
            format!(r#"REDIS_PORT must be a port number from 1 to 65535, got "{bad}""#)
        );
    }
    // A bad host and a bad port are both reported.
    let errors = load(&[("REDIS_HOST", "a b"), ("REDIS_PORT", "x")]).unwrap_err();
    assert_eq!(errors.len(), 2);
}

#[test]
fn redis_config_from_url() {
    assert!(RedisConfig::from_url("redis://localhost:6379").is_ok());
    assert_eq!(
        RedisConfig::from_url("http://x").unwrap_err().var(),
        "REDIS_URL"
    );
}

#[test]
fn rate_limit_max() {
    assert_eq!(ok(&[("RATE_LIMIT_MAX", "100")]).rate_limit.max, 100);
    assert_eq!(ok(&[("RATE_LIMIT_MAX", "1")]).rate_limit.max, 1);
    assert_eq!(
        err(&[("RATE_LIMIT_MAX", "0")], "RATE_LIMIT_MAX"),
        r#"RATE_LIMIT_MAX must be a positive whole number (1 to 4294967295), got "0""#
    );
    for bad in ["-5", "1.5", "abc", "99999999999"] {
        err(&[("RATE_LIMIT_MAX", bad)], "RATE_LIMIT_MAX");
    }
}

#[test]
fn rate_limit_window_accepts_seconds_and_units() {
    for (given, secs) in [
        ("60", 60.0),
        ("1", 1.0),
        ("60s", 60.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("1h 30m", 5400.0),
        ("500ms", 0.5),
        ("30days", 30.0 * 86400.0),
    ] {
        assert_eq!(
            ok(&[("RATE_LIMIT_WINDOW", given)])
                .rate_limit
                .window
                .as_secs_f64(),
            secs,
            "{given}"
        );
    }
    for bad in ["0", "0s", "abc", "-1", "60x", "31days", "1.5"] {
        let msg = err(&[("RATE_LIMIT_WINDOW", bad)], "RATE_LIMIT_WINDOW");
        assert_eq!(
            msg,
            format!(
                "RATE_LIMIT_WINDOW must be a positive duration of at most 30 days: whole seconds \
                 (60) or with a unit (60s, 15m, 1h), got \"{bad}\""
            )
        );
    }
}

#[test]
fn database_url() {
    for url in [
        "postgres://postgres@127.0.0.1:5432/test",
        "postgresql://user:pw@db.internal/app?sslmode=require",
        "sqlite::memory:",
        "sqlite://data/telemetry.db",
    ] {
        let db = ok(&[("DATABASE_URL", url)]).database.unwrap();
        assert_eq!(db.url(), url);
        assert_eq!(db.is_sqlite(), url.starts_with("sqlite"));
    }
    let c = ok(&[("DATABASE_URL", "postgres://app:s3cr3t@db:5432/app")]);
    let db = c.database.as_ref().unwrap();
    assert_eq!(db.redacted_url(), "postgres://app:***@db:5432/app");
    assert!(!format!("{c:?}").contains("s3cr3t"));

    let msg = err(
        &[("DATABASE_URL", "mysql://app:s3cr3t@db/app")],
        "DATABASE_URL",
    );
    assert_eq!(
        msg,
        r#"DATABASE_URL must be a postgres://, postgresql:// or sqlite: URL, got "mysql://***@db/app""#
    );
    err(&[("DATABASE_URL", "just text")], "DATABASE_URL");
}

#[test]
fn metrics_api() {
    let c = ok(&[
        (
            "METRICS_API_URL",
            "http://localhost:3000/api/metrics/record",
        ),
        ("METRICS_API_TOKEN", "bearer-token-here"),
    ]);
    let api = c.metrics_api.as_ref().unwrap();
    assert_eq!(api.url.as_str(), "http://localhost:3000/api/metrics/record");
    assert_eq!(api.token.as_ref().unwrap().expose(), "bearer-token-here");
    assert!(!format!("{c:?}").contains("bearer-token-here"));
    assert!(ok(&[("METRICS_API_URL", "https://m.example.com")])
        .metrics_api
        .unwrap()
        .token
        .is_none());

    for bad in [
        "ftp://m.example.com",
        "localhost:3000",
        "not a url",
        "http://",
    ] {
        let msg = err(&[("METRICS_API_URL", bad)], "METRICS_API_URL");
        assert!(msg.starts_with("METRICS_API_URL must be an http:// or https:// URL with a host"));
    }
    assert_eq!(
        err(&[("METRICS_API_TOKEN", "tok")], "METRICS_API_TOKEN"),
        "METRICS_API_TOKEN is set but METRICS_API_URL is not: set METRICS_API_URL too, or unset METRICS_API_TOKEN"
    );
    assert!(MetricsApiConfig::new("https://x.example", None).is_ok());
    assert!(MetricsApiConfig::new("x.example", None).is_err());
}

#[test]
fn health_token() {
    let c = ok(&[("HEALTH_TOKEN", "  s3cr3t-Token_42.~+/=  ")]);
    assert_eq!(
        c.health.token.as_ref().unwrap().expose(),
        "s3cr3t-Token_42.~+/=",
        "surrounding whitespace is ignored"
    );
    assert!(!format!("{c:?}").contains("s3cr3t"));
    assert_eq!(ok(&[("HEALTH_TOKEN", "   ")]).health.token, None);

    // Anything a client cannot send after `Bearer ` is rejected, without showing the value.
    for bad in ["two words", "tab\there", "caf\u{e9}-token", "line\nbreak"] {
        let msg = err(&[("HEALTH_TOKEN", bad)], "HEALTH_TOKEN");
        assert_eq!(
            msg,
            format!(
                "HEALTH_TOKEN must be a bearer token of visible ASCII characters without spaces, \
                 got a secret value of {} bytes (not shown)",
                bad.len()
            )
        );
    }
    let built = Config::builder().health_token("abc").build().unwrap();
    assert_eq!(built.health.token.unwrap().expose(), "abc");
    assert!(Config::builder().health_token("a b").build().is_err());
    assert!(HealthConfig::new(Some(Secret::new("tok"))).is_ok());
    assert!(HealthConfig::new(Some(Secret::new(""))).is_err());
    assert!(HealthConfig::new(None).unwrap().token.is_none());
    let section = HealthConfig::from_lookup(|v| (v == "HEALTH_TOKEN").then(|| "x y".into()));
    assert_eq!(section.unwrap_err().len(), 1);
}

#[test]
fn otel_service_name_and_resource_attributes() {
    let c = ok(&[
        ("OTEL_SERVICE_NAME", "checkout"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod, team = payments ,note=a%2Cb%3Dc,",
        ),
    ]);
    assert_eq!(c.otel.service_name.as_deref(), Some("checkout"));
    assert_eq!(
        c.otel.resource_attributes,
        vec![
            ("deployment.environment".into(), "prod".into()),
            ("team".into(), "payments".into()),
            ("note".into(), "a,b=c".into()),
        ]
    );
    err(&[("OTEL_SERVICE_NAME", "a\u{7}b")], "OTEL_SERVICE_NAME");
    for (bad, why) in [
        ("novalue", "a pair has no '='"),
        ("=v", "a key is empty"),
        ("k=%FF", "a value is not UTF-8 once decoded"),
        ("%FF=v", "a key is not UTF-8 once decoded"),
    ] {
        let msg = err(
            &[("OTEL_RESOURCE_ATTRIBUTES", bad)],
            "OTEL_RESOURCE_ATTRIBUTES",
        );
        assert!(msg.contains(why), "{msg}");
    }
}

#[test]
fn otel_exporter() {
    let c = ok(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]);
    assert_eq!(
        c.otel.exporter_otlp_endpoint.as_ref().unwrap().as_str(),
        "http://collector:4317/"
    );
    assert!(c.otel.export_enabled());
    assert_eq!(c.otel.exporter_otlp_protocol, OtlpProtocol::Grpc);
    assert!(!ok(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_SDK_DISABLED", "true")
    ])
    .otel
    .export_enabled());
    for (given, want) in [
        ("http/protobuf", OtlpProtocol::HttpProtobuf),
        ("http/json", OtlpProtocol::HttpJson),
        ("GRPC", OtlpProtocol::Grpc),
    ] {
        assert_eq!(
            ok(&[("OTEL_EXPORTER_OTLP_PROTOCOL", given)])
                .otel
                .exporter_otlp_protocol,
            want
        );
    }
    assert_eq!(
        OtlpProtocol::Grpc.default_endpoint(),
        "http://localhost:4317"
    );
    assert_eq!(
        err(
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http")],
            "OTEL_EXPORTER_OTLP_PROTOCOL"
        ),
        r#"OTEL_EXPORTER_OTLP_PROTOCOL must be one of http/protobuf, grpc, http/json, got "http""#
    );
    err(
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")],
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    );
}

#[test]
fn otel_sampler_and_arg() {
    for s in TracesSampler::ALL {
        assert_eq!(
            ok(&[("OTEL_TRACES_SAMPLER", s.as_str())])
                .otel
                .traces_sampler,
            s
        );
    }
    let msg = err(
        &[("OTEL_TRACES_SAMPLER", "jaeger_remote")],
        "OTEL_TRACES_SAMPLER",
    );
    assert!(
        msg.starts_with("OTEL_TRACES_SAMPLER must be one of always_on"),
        "{msg}"
    );

    let c = ok(&[
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
    ]);
    assert_eq!(c.otel.traces_sampler_arg, Some(0.25));
    assert_eq!(c.otel.sampler_ratio(), Some(0.25));
    let c = ok(&[("OTEL_TRACES_SAMPLER", "traceidratio")]);
    assert_eq!(c.otel.sampler_ratio(), Some(1.0));
    assert_eq!(
        err(
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2")
            ],
            "OTEL_TRACES_SAMPLER_ARG"
        ),
        r#"OTEL_TRACES_SAMPLER_ARG must be a number between 0 and 1, got "2""#
    );
    // Samplers without a ratio ignore the argument.
    let c = ok(&[
        ("OTEL_TRACES_SAMPLER", "always_on"),
        ("OTEL_TRACES_SAMPLER_ARG", "x"),
    ]);
    assert_eq!(c.otel.traces_sampler_arg, None);
}

#[test]
fn every_error_is_reported_in_one_pass() {
    let errors = load(&[
        ("PORT", "x"),
        ("LOG_LEVEL", "loud"),
        ("SENTRY_TRACES_SAMPLE_RATE", "1.5"),
        ("SENTRY_DSN", "nope"),
        ("RATE_LIMIT_MAX", "0"),
        ("RATE_LIMIT_WINDOW", "soon"),
        ("REDIS_URL", "http://x"),
        ("TELEMETRY_ENABLED", "perhaps"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
    ])
    .unwrap_err();
    assert_eq!(errors.len(), 9, "{errors}");
    for var in [
        "PORT",
        "LOG_LEVEL",
        "SENTRY_TRACES_SAMPLE_RATE",
        "SENTRY_DSN",
        "RATE_LIMIT_MAX",
        "RATE_LIMIT_WINDOW",
        "REDIS_URL",
        "TELEMETRY_ENABLED",
        "OTEL_TRACES_SAMPLER",
    ] {
        assert!(errors.get(var).is_some(), "{var} missing from {errors}");
    }
    let text = errors.to_string();
    assert!(
        text.starts_with("invalid configuration (9 errors):\n  - "),
        "{text}"
    );
    assert_eq!(text.lines().count(), 10);

    let one = load(&[("PORT", "x")]).unwrap_err().to_string();
    assert_eq!(
        one,
        r#"invalid configuration: PORT must be a port number from 0 to 65535, got "x""#
    );
}

#[test]
fn shown_values_are_escaped_and_cut() {
    let msg = err(&[("LOG_FORMAT", "a\"b\nc\u{1b}[31m")], "LOG_FORMAT");
    assert_eq!(
        msg,
        r#"LOG_FORMAT must be json or pretty, got "a\"b\nc\u{1b}[31m""#
    );
    let long = "x".repeat(500);
    let msg = err(&[("LOG_FORMAT", &long)], "LOG_FORMAT");
    assert!(
        msg.ends_with(&format!("\"{}\" (cut, 500 bytes in all)", "x".repeat(80))),
        "{msg}"
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let secrets = [
        "dsnkey123",
        "redispw456",
        "tok789",
        "dbpw000",
        "healthtok321",
    ];
    let c = ok(&[
        ("SENTRY_DSN", "https://dsnkey123@sentry.example.com/1"),
        ("REDIS_PASSWORD", "redispw456"),
        ("METRICS_API_URL", "https://m.example.com"),
        ("METRICS_API_TOKEN", "tok789"),
        ("DATABASE_URL", "postgres://u:dbpw000@db/app"),
        ("HEALTH_TOKEN", "healthtok321"),
    ]);
    let debug = format!("{c:?} {c:#?}");
    for s in secrets {
        assert!(!debug.contains(s), "{s} leaked into {debug}");
    }
    let builder = Config::builder().redis_password("redispw456");
    assert!(!format!("{builder:?}").contains("redispw456"));
    let secret = Secret::new("abc");
    assert_eq!(format!("{secret:?}"), "Secret([redacted, 3 bytes])");
    assert_eq!(secret.to_string(), "[redacted, 3 bytes]");
    assert_eq!(secret.len(), 3);
    assert!(!secret.is_empty());
}

#[test]
fn mask_userinfo_cases() {
    use super::error::mask_userinfo;
    assert_eq!(mask_userinfo("redis://h:1").as_deref(), Some("redis://h:1"));
    assert_eq!(
        mask_userinfo("redis://:pw@h").as_deref(),
        Some("redis://***@h")
    );
    assert_eq!(mask_userinfo("redis://@h").as_deref(), Some("redis://@h"));
    assert_eq!(mask_userinfo("u:pw@h"), None);
}

#[test]
fn builder_uses_the_same_validation() {
    let c = Config::builder()
        .port(8080)
        .log_level("debug")
        .log_format(LogFormat::Pretty)
        .log_requests(false)
        .log_health_requests(true)
        .sentry_dsn("https://k@sentry.example.com/1")
        .sentry_environment("staging")
        .sentry_release("app@1.0.0")
        .sentry_traces_sample_rate(0.5)
        .redis_host("cache")
        .redis_port(6380)
        .redis_password("pw")
        .rate_limit_max(100)
        .rate_limit_window(Duration::from_millis(1500))
        .telemetry_enabled(true)
        .database_url("sqlite::memory:")
        .metrics_api_url("https://m.example.com/record")
        .metrics_api_token("t")
        .otel_sdk_disabled(false)
        .otel_service_name("svc")
        .otel_resource_attributes("a=b")
        .otel_exporter_otlp_endpoint("http://collector:4318")
        .otel_exporter_otlp_protocol(OtlpProtocol::HttpJson)
        .otel_traces_sampler(TracesSampler::TraceIdRatio)
        .otel_traces_sampler_arg(0.5)
        .build()
        .unwrap();
    assert_eq!(c.server.port, 8080);
    assert_eq!(c.log.filter, "debug");
    assert_eq!(c.log.format, LogFormat::Pretty);
    assert!(!c.log.log_requests && c.log.log_health_requests);
    assert_eq!(c.sentry.environment, "staging");
    assert_eq!(c.sentry.release.as_deref(), Some("app@1.0.0"));
    assert_eq!(c.sentry.traces_sample_rate, 0.5);
    assert_eq!(c.redis.unwrap().url(), "redis://:pw@cache:6380");
    assert_eq!(c.rate_limit.max, 100);
    assert_eq!(c.rate_limit.window, Duration::from_millis(1500));
    assert!(c.telemetry.enabled);
    assert!(c.database.unwrap().is_sqlite());
    assert_eq!(c.metrics_api.unwrap().token.unwrap().expose(), "t");
    assert_eq!(c.otel.service_name.as_deref(), Some("svc"));
    assert_eq!(c.otel.exporter_otlp_protocol, OtlpProtocol::HttpJson);
    assert_eq!(c.otel.sampler_ratio(), Some(0.5));

    // Same messages as from the environment.
    let errors = Config::builder()
        .sentry_traces_sample_rate(1.5)
        .rate_limit_window(Duration::ZERO)
        .log_filter("info,x=loud")
        .build()
        .unwrap_err();
    assert_eq!(errors.len(), 3, "{errors}");
    assert_eq!(
        errors.get("SENTRY_TRACES_SAMPLE_RATE").unwrap().to_string(),
        r#"SENTRY_TRACES_SAMPLE_RATE must be a number between 0 and 1, got "1.5""#
    );
    // `set` with the empty string unsets.
    assert_eq!(
        Config::builder()
            .set(vars::PORT, "")
            .build()
            .unwrap()
            .server
            .port,
        3000
    );
}

#[test]
fn sections_read_alone() {
    let map = HashMap::from([("RATE_LIMIT_MAX", "7"), ("SENTRY_DSN", "bad")]);
    let lookup = |k: &str| map.get(k).map(|v| v.to_string());
    assert_eq!(RateLimitConfig::from_lookup(lookup).unwrap().max, 7);
    assert_eq!(SentryConfig::from_lookup(lookup).unwrap_err().len(), 1);
    assert_eq!(
        ServerConfig::from_lookup(lookup).unwrap(),
        ServerConfig::default()
    );
    assert_eq!(
        TelemetryConfig::from_lookup(lookup).unwrap(),
        TelemetryConfig::default()
    );
    assert_eq!(
        OtelConfig::from_lookup(lookup).unwrap(),
        OtelConfig::default()
    );

    let log = HashMap::from([("LOG_LEVEL", "x"), ("LOG_FORMAT", "y")]);
    let e = LogConfig::from_lookup(|k| log.get(k).map(|v| v.to_string())).unwrap_err();
    assert_eq!(e.var(), "LOG_LEVEL", "the first error is reported");
}

#[test]
fn from_env_reads_the_process_environment() {
    // Compares with an explicit lookup of the same environment (never mutated here).
    assert_eq!(
        Config::from_env(),
        Config::from_lookup(|v| std::env::var(v).ok())
    );
    assert_eq!(vars::ALL.len(), 30);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any value of any variable: no panic, and an error message is one line.
        #[test]
        fn any_value_is_parsed_or_rejected_on_one_line(
            var in proptest::sample::select(vars::ALL),
            value in any::<String>(),
        ) {
            if let Err(errors) = load(&[(var, value.as_str())]) {
                for e in &errors {
                    let msg = e.to_string();
                    prop_assert!(!msg.contains(['\n', '\r', '\u{1b}']), "{:?}", msg);
                }
            }
        }

        /// Secret values never show up in errors or `Debug`, whatever surrounds them.
        #[test]
        fn secrets_never_leak(
            secret in "[A-Za-z0-9]{16,32}",
            junk in "[ -~]{0,12}",
            scheme in "[a-z+]{0,8}",
            host in "[a-z0-9.:/?]{0,16}",
        ) {
            let cases = [
                ("SENTRY_DSN", format!("{junk}{secret}{junk}")),
                ("SENTRY_DSN", format!("https://{secret}@{host}")),
                ("REDIS_URL", format!("{scheme}://:{secret}@{host}")),
                ("REDIS_URL", format!("{scheme}://user:{secret}@{host}{junk}")),
                ("DATABASE_URL", format!("{scheme}://app:{secret}@{host}")),
                ("REDIS_PASSWORD", secret.clone()),
                ("METRICS_API_TOKEN", secret.clone()),
                ("HEALTH_TOKEN", secret.clone()),
                ("HEALTH_TOKEN", format!("{junk}{secret}{junk}")),
            ];
            for (var, value) in cases {
                let shown = match load(&[(var, value.as_str())]) {
                    Ok(c) => format!("{c:?}"),
                    Err(e) => format!("{e} {e:?}"),
                };
                prop_assert!(!shown.contains(&secret), "{} leaked: {}", var, shown);
            }
        }
    }
}

#[test]
fn telemetry_subject_secret_and_key_version() {
    let c = ok(&[]);
    assert_eq!(c.telemetry.subject_secret, None);
    assert_eq!(c.telemetry.subject_key_version, 1);

    let secret = "0123456789abcdef0123456789abcdef";
    let c = ok(&[
        ("TELEMETRY_SUBJECT_SECRET", secret),
        ("TELEMETRY_SUBJECT_KEY_VERSION", "3"),
    ]);
    assert_eq!(
        c.telemetry.subject_secret.as_ref().unwrap().expose(),
        secret
    );
    assert_eq!(c.telemetry.subject_key_version, 3);

    let msg = err(
        &[("TELEMETRY_SUBJECT_SECRET", "short-secret")],
        "TELEMETRY_SUBJECT_SECRET",
    );
    assert!(msg.contains("at least 16 bytes"), "{msg}");
    assert!(msg.contains("12 bytes"), "{msg}");
    assert!(
        !msg.contains("short-secret"),
        "the secret is never shown: {msg}"
    );

    for bad in ["0", "65536", "-1", "v2"] {
        let msg = err(
            &[("TELEMETRY_SUBJECT_KEY_VERSION", bad)],
            "TELEMETRY_SUBJECT_KEY_VERSION",
        );
        assert!(msg.contains("from 1 to 65535"), "{msg}");
    }
}

-- obs-telemetry 0001: telemetry events and run metrics (SQLite).
-- Timestamps are RFC 3339 UTC text with milliseconds ('2026-01-07T14:32:15.000Z'), which
-- sorts and compares correctly as text; JSON columns are TEXT.

CREATE TABLE IF NOT EXISTS telemetry_events (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type          TEXT    NOT NULL,
    event_data          TEXT    NOT NULL DEFAULT '{}',
    request_id          TEXT,
    route               TEXT,
    subject_hash        TEXT,
    subject_key_version INTEGER,
    occurred_at         TEXT    NOT NULL,
    redactions          TEXT    NOT NULL DEFAULT '{}',
    schema_version      INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS telemetry_events_type_idx ON telemetry_events (event_type);
CREATE INDEX IF NOT EXISTS telemetry_events_occurred_at_idx ON telemetry_events (occurred_at DESC);
CREATE INDEX IF NOT EXISTS telemetry_events_request_idx ON telemetry_events (request_id);
CREATE INDEX IF NOT EXISTS telemetry_events_subject_idx ON telemetry_events (subject_hash);

CREATE TABLE IF NOT EXISTS run_metrics (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL,
    metric_name  TEXT NOT NULL,
    metric_value REAL,
    recorded_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS run_metrics_run_idx ON run_metrics (run_id);
CREATE INDEX IF NOT EXISTS run_metrics_name_idx ON run_metrics (metric_name);
CREATE INDEX IF NOT EXISTS run_metrics_recorded_at_idx ON run_metrics (recorded_at DESC);

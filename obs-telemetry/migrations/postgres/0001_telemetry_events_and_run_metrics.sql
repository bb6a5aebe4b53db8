-- obs-telemetry 0001: telemetry events and run metrics (PostgreSQL).
-- Layout of the reference services (st108 telemetry_events, gittinkerer run_metrics).

CREATE TABLE IF NOT EXISTS telemetry_events (
    id                  BIGSERIAL PRIMARY KEY,
    event_type          TEXT        NOT NULL,
    event_data          JSONB       NOT NULL DEFAULT '{}'::jsonb,
    request_id          TEXT,
    route               TEXT,
    subject_hash        TEXT,
    subject_key_version SMALLINT,
    occurred_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    redactions          JSONB       NOT NULL DEFAULT '{}'::jsonb,
    schema_version      INTEGER     NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS telemetry_events_type_idx ON telemetry_events (event_type);
CREATE INDEX IF NOT EXISTS telemetry_events_occurred_at_idx ON telemetry_events (occurred_at DESC);
CREATE INDEX IF NOT EXISTS telemetry_events_request_idx ON telemetry_events (request_id);
CREATE INDEX IF NOT EXISTS telemetry_events_subject_idx ON telemetry_events (subject_hash);

-- The reference schema also has `REFERENCES runs(run_id) ON DELETE CASCADE`; obs does not own
-- a runs table, so the foreign key is left to the application.
CREATE TABLE IF NOT EXISTS run_metrics (
    id           BIGSERIAL PRIMARY KEY,
    run_id       TEXT        NOT NULL,
    metric_name  TEXT        NOT NULL,
    metric_value NUMERIC,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS run_metrics_run_idx ON run_metrics (run_id);
CREATE INDEX IF NOT EXISTS run_metrics_name_idx ON run_metrics (metric_name);
CREATE INDEX IF NOT EXISTS run_metrics_recorded_at_idx ON run_metrics (recorded_at DESC);

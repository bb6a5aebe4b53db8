//! The crate's shipped SQL migrations (`migrations/{postgres,sqlite}/`, embedded at compile
//! time) and the runner that applies them.
//!
//! Applied versions are tracked in a table of our own, `obs_telemetry_migrations`, not in
//! sqlx's `_sqlx_migrations`: the application's own `sqlx::migrate!` would otherwise see our
//! versions as unknown and refuse to run. On PostgreSQL the runner holds a transaction-scoped
//! advisory lock, so several instances starting at once apply each migration exactly once.
//! Every migration is idempotent (`IF NOT EXISTS`), so an existing reference-service
//! `run_metrics` table is kept.
//!
//! ```no_run
//! # #[cfg(feature = "sqlite")]
//! # async fn f() -> Result<(), obs_telemetry::Error> {
//! let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
//! obs_telemetry::migrate::run_sqlite(&pool).await?;
//! # Ok(()) }
//! ```

/// One shipped migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version (increasing).
    pub version: i64,
    /// What it does.
    pub description: &'static str,
    /// The SQL (several statements).
    pub sql: &'static str,
}

/// Migrations for PostgreSQL.
pub const POSTGRES: &[Migration] = &[Migration {
    version: 1,
    description: "telemetry_events and run_metrics",
    sql: include_str!("../migrations/postgres/0001_telemetry_events_and_run_metrics.sql"),
}];

/// Migrations for SQLite.
pub const SQLITE: &[Migration] = &[Migration {
    version: 1,
    description: "telemetry_events and run_metrics",
    sql: include_str!("../migrations/sqlite/0001_telemetry_events_and_run_metrics.sql"),
}];

const TRACKING_TABLE: &str = "CREATE TABLE IF NOT EXISTS obs_telemetry_migrations (\
     version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
     applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)";

/// Applies the missing [`POSTGRES`] migrations in the pool's current schema; returns how
/// many were applied.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub async fn run_postgres(pool: &sqlx::PgPool) -> Result<usize, crate::Error> {
    let mut tx = pool.begin().await?;
    // A fixed key ("obs_tel" as bytes): one lock shared by every obs-telemetry migrator.
    sqlx::query("SELECT pg_advisory_xact_lock(31244111478138220)")
        .execute(&mut *tx)
        .await?;
    sqlx::query(TRACKING_TABLE).execute(&mut *tx).await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM obs_telemetry_migrations")
        .fetch_all(&mut *tx)
        .await?;
    let mut n = 0;
    for m in POSTGRES.iter().filter(|m| !applied.contains(&m.version)) {
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .map_err(|source| crate::Error::Migration {
                version: m.version,
                description: m.description,
                source,
            })?;
        sqlx::query("INSERT INTO obs_telemetry_migrations (version, description) VALUES ($1, $2)")
            .bind(m.version)
            .bind(m.description)
            .execute(&mut *tx)
            .await?;
        n += 1;
    }
    tx.commit().await?;
    Ok(n)
}

/// Applies the missing [`SQLITE`] migrations; returns how many were applied.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub async fn run_sqlite(pool: &sqlx::SqlitePool) -> Result<usize, crate::Error> {
    let mut conn = pool.acquire().await?;
    // IMMEDIATE takes the write lock up front, so concurrent migrators serialise.
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let result = async {
        sqlx::query(TRACKING_TABLE).execute(&mut *conn).await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM obs_telemetry_migrations")
            .fetch_all(&mut *conn)
            .await?;
        let mut n = 0;
        for m in SQLITE.iter().filter(|m| !applied.contains(&m.version)) {
            sqlx::raw_sql(m.sql)
                .execute(&mut *conn)
                .await
                .map_err(|source| crate::Error::Migration {
                    version: m.version,
                    description: m.description,
                    source,
                })?;
            sqlx::query(
                "INSERT INTO obs_telemetry_migrations (version, description) VALUES (?, ?)",
            )
            .bind(m.version)
            .bind(m.description)
            .execute(&mut *conn)
            .await?;
            n += 1;
        }
        Ok::<usize, crate::Error>(n)
    }
    .await;
    match result {
        Ok(n) => {
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
            Ok(n)
        }
        Err(e) => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            Err(e)
        }
    }
}

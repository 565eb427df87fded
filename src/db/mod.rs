//! Database access: the pool (connections run as the unprivileged `growthgraph_app`
//! role), migrations, the tenant-scoped handle every resolver and operation goes through,
//! and the embedded cluster.

pub mod aggregate;
pub mod children;
pub mod cluster;
pub mod filter;
pub mod nested;
pub mod page;
pub mod prefetch;
pub mod replica;
#[rustfmt::skip]
pub mod schema;
pub mod share;
pub mod sql;
pub mod tenant;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{Instrumentation, InstrumentationEvent};

use deadpool::managed::QueueMode;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;

pub use tenant::{group, Tenant, TenantDb};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The role every server query runs as (created by the first migration).
pub const APP_ROLE: &str = "growthgraph_app";

pub type PgPool = Pool<AsyncPgConnection>;

/// A connection of `pool` for a unit of work, the wait timed
/// (`growthgraph_db_pool_wait_seconds`).
pub async fn checkout(
    pool: &PgPool,
) -> Result<
    diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>,
    diesel_async::pooled_connection::deadpool::PoolError,
> {
    let started = std::time::Instant::now();
    let conn = pool.get().await;
    crate::telemetry::TELEMETRY
        .pool_wait
        .observe(started.elapsed().as_secs_f64());
    conn
}

/// Counts the statements the pool's connections send: data statements (queries) apart
/// from transaction control (`BEGIN`/`COMMIT`/`ROLLBACK`/`SET`). Exported at `/metrics`;
/// tests use it to prove a request's statement count does not grow with page size.
#[derive(Debug, Default)]
pub struct StatementCounter {
    pub data: AtomicU64,
    pub control: AtomicU64,
}

impl StatementCounter {
    pub fn data_statements(&self) -> u64 {
        self.data.load(Ordering::Relaxed)
    }
}

/// Counts each connection's statements and times them
/// (`growthgraph_sql_statement_duration_seconds`).
struct CountStatements(
    Arc<StatementCounter>,
    Option<(std::time::Instant, Option<tracing::Span>)>,
);

/// Captures the first bytes written, then refuses more (which ends the formatting).
#[derive(Default)]
struct StatementHead {
    bytes: [u8; 16],
    len: usize,
}

impl StatementHead {
    fn text(&self) -> &[u8] {
        let text = &self.bytes[..self.len];
        let start = text
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(text.len());
        &text[start..]
    }
}

impl std::fmt::Write for StatementHead {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let take = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if self.len == self.bytes.len() {
            Err(std::fmt::Error)
        } else {
            Ok(())
        }
    }
}

impl Instrumentation for CountStatements {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { .. } = event {
            // The statement's span (if traces are exported) ends here.
            if let Some((started, _span)) = self.1.take() {
                crate::telemetry::TELEMETRY
                    .statement_duration
                    .observe(started.elapsed().as_secs_f64());
            }
        }
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            let span = crate::telemetry::statement_spans().then(|| {
                // The SQL text only: the binds (customers' data) stay out of traces.
                let text = query.to_string();
                let sql = text.split("-- binds:").next().unwrap_or("").trim();
                let sql: String = sql.chars().take(500).collect();
                tracing::info_span!("sql", db.system = "postgresql", db.statement = %sql)
            });
            self.1 = Some((std::time::Instant::now(), span));
            // Only the statement's first words matter: stop formatting there instead of
            // rendering every query (with its binds) on the hot path.
            let mut head = StatementHead::default();
            let _ = std::fmt::write(&mut head, format_args!("{query}"));
            let head = head.text();
            let control = [
                "BEGIN",
                "COMMIT",
                "ROLLBACK",
                "SET ",
                "SAVEPOINT",
                "RELEASE",
            ]
            .iter()
            .any(|p| head.len() >= p.len() && head[..p.len()].eq_ignore_ascii_case(p.as_bytes()));
            let counter = if control {
                &self.0.control
            } else {
                &self.0.data
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Builds the pool. Each new connection switches to the app role, so row-level security
/// applies to everything the server runs, and gets a statement timeout.
pub fn build_pool(
    url: &str,
    size: usize,
    statement_timeout: Duration,
    statements: Arc<StatementCounter>,
) -> PgPool {
    let mut config = ManagerConfig::default();
    // A connection left inside a transaction (a cancelled request) is discarded by the
    // pool's own check; Fast skips the extra round trip per checkout.
    config.recycling_method = RecyclingMethod::Fast;
    // Generic plans: every cached statement is planned once per connection. PostgreSQL's
    // default re-plans a statement per execution whenever a generic plan looks costlier,
    // which it judged for most of ours (`= ANY($keys)`): planning then cost twice the
    // execution. Every statement here leads with an indexed `tenant_id`, so one plan fits.
    // No JIT: a generic plan takes a `LIMIT $n` for a tenth of the table, and by that
    // estimate PostgreSQL compiled a page read with its relations (a millisecond's work)
    // for 25 ms on every execution.
    let setup = format!(
        "SET ROLE {APP_ROLE}; SET statement_timeout = {}; SET application_name = 'growthgraph'; \
         SET plan_cache_mode = force_generic_plan; SET jit = off",
        statement_timeout.as_millis()
    );
    config.custom_setup = Box::new(move |url| {
        let setup = setup.clone();
        let statements = statements.clone();
        async move {
            let mut conn = AsyncPgConnection::establish(url).await?;
            conn.set_instrumentation(CountStatements(statements, None));
            conn.batch_execute(&setup)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    Pool::builder(manager)
        .max_size(size)
        // The connection returned last is handed out first: at light load requests keep
        // reusing the same few backends, whose caches are warm, instead of cycling
        // through every idle one (a lone `customer(id)`: ≈ 40 % less PostgreSQL CPU).
        .queue_mode(QueueMode::Lifo)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .expect("pool configuration is valid")
}

/// Runs pending migrations as the connecting (owning) role.
pub async fn migrate(url: &str) -> Result<Vec<String>, String> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn: AsyncConnectionWrapper<AsyncPgConnection> =
            <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                .map_err(|e| unreachable(&url, &e))?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| format!("migration failed: {e}"))?;
        Ok(applied.iter().map(|v| v.to_string()).collect())
    })
    .await
    .map_err(|e| format!("migration task failed: {e}"))?
}

/// One connection as the owning role, for administrative commands (`tenant create`, seeds).
pub async fn connect_owner(url: &str) -> Result<AsyncPgConnection, String> {
    AsyncPgConnection::establish(url)
        .await
        .map_err(|e| unreachable(url, &e))
}

/// Why the database at `url` could not be reached, naming where it was looked for (host,
/// port, database, user) and never the password.
pub fn unreachable(url: &str, error: &dyn std::fmt::Display) -> String {
    format!(
        "cannot connect to the database {}: {error} (is PostgreSQL running and reachable there?)",
        whereabouts(url)
    )
}

/// `at host:port (database D, user U)` of a `postgres://` URL (a socket directory given
/// percent-encoded as the host, or as `?host=`, is shown decoded).
fn whereabouts(url: &str) -> String {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return "(its URL does not parse)".to_owned();
    };
    let query_host = parsed
        .query_pairs()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.into_owned());
    let host = query_host
        .or_else(|| parsed.host_str().map(percent_decode))
        .unwrap_or_else(|| "localhost".to_owned());
    let port = parsed.port().unwrap_or(5432);
    let database = percent_decode(parsed.path().trim_start_matches('/'));
    let user = percent_decode(parsed.username());
    let mut place = format!("at {host}:{port}");
    let mut about = Vec::new();
    if !database.is_empty() {
        about.push(format!("database {database}"));
    }
    if !user.is_empty() {
        about.push(format!("user {user}"));
    }
    if !about.is_empty() {
        place.push_str(&format!(" ({})", about.join(", ")));
    }
    place
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::unreachable;

    #[test]
    fn an_unreachable_database_is_named_without_its_password() {
        let line = unreachable("postgres://app:s3cret@db.internal:6543/growth", &"refused");
        assert_eq!(
            line,
            "cannot connect to the database at db.internal:6543 (database growth, user app): \
             refused (is PostgreSQL running and reachable there?)"
        );
        let socket = unreachable(
            "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres",
            &"x",
        );
        assert!(
            socket.contains("at /var/run/postgresql:5432 (database postgres, user postgres)"),
            "{socket}"
        );
        assert!(!unreachable("postgres://u:hunter2@h/d?host=/tmp", &"x").contains("hunter2"));
        assert!(unreachable("postgres://u:hunter2@h/d?host=/tmp", &"x").contains("at /tmp:5432"));
        assert!(!unreachable("not a url :hunter2", &"x").contains("hunter2"));
    }
}

//! The read replica (`--replica-url` / `DATABASE_REPLICA_URL`).
//!
//! What reads there: the queries (one operation, never a mutation or a batch) of API keys
//! the server has seen recently, the requests that take no connection to be
//! authenticated (see [`crate::auth`]). Their snapshot, their key's confirmation and
//! every statement they run are the replica's; nothing they run writes (a read request
//! refuses writes). Everything else stays on the primary: key lookups, mutations,
//! batches, WebSockets, jobs.
//!
//! When: while the replica answers and keeps up. A watcher asks it every half of the
//! allowed lag (`--replica-max-lag-ms`) how far it has replayed, and reads go there only
//! while it has replayed at least what the primary had written one check before (so it
//! lags by at most about the allowed lag), and not while it cannot be reached: reads then
//! go to the primary until a check finds it well again. A server that is not a standby
//! (no replay position) is taken as up to date. At start, reads go there as soon as it has
//! replayed what the primary had written then (asked every 100 ms until it has). The
//! watcher asks on connections of its own, not the pools'.
//!
//! What a client sees: a query may not show a write committed a moment before (at most
//! the lag above). A revoked key stops working at once all the same: the instance that
//! revokes it forgets it as the revocation commits, every other one as its event listener
//! hears of it (`crate::events`), and a key not known is looked up on the primary.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use deadpool::managed::Manager;
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Bool, Nullable, Text};
use diesel::QueryableByName;
use diesel_async::AsyncPgConnection;

use super::PgPool;

/// How long one check may take before the replica counts as unreachable.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the watcher asks while the replica has not yet replayed the primary's
/// position at start (see [`watch`]).
const WARM_UP_CHECK: Duration = Duration::from_millis(100);

pub struct Replica {
    pool: PgPool,
    /// Whether the last check found it reachable and caught up.
    usable: AtomicBool,
    /// Requests routed here.
    reads: AtomicU64,
}

#[derive(QueryableByName)]
struct Position {
    #[diesel(sql_type = Text)]
    lsn: String,
}

#[derive(QueryableByName)]
struct CaughtUp {
    #[diesel(sql_type = Nullable<Bool>)]
    caught_up: Option<bool>,
}

impl Replica {
    /// The replica behind `pool`, watched against `primary` while the result lives (may
    /// lag by `max_lag`); not used before its first check.
    pub fn watch(pool: PgPool, primary: PgPool, max_lag: Duration) -> Arc<Self> {
        let replica = Arc::new(Replica {
            pool,
            usable: AtomicBool::new(false),
            reads: AtomicU64::new(0),
        });
        tokio::spawn(watch(Arc::downgrade(&replica), primary, max_lag / 2));
        replica
    }

    /// The pool to read from, while the replica is usable; counts the request.
    pub fn for_reads(&self) -> Option<PgPool> {
        if !self.usable.load(Ordering::Relaxed) {
            return None;
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        Some(self.pool.clone())
    }

    pub fn is_usable(&self) -> bool {
        self.usable.load(Ordering::Relaxed)
    }

    /// Requests routed to the replica so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

/// A connection of the watcher's own to one server, opened as `pool` opens its
/// connections (but never taken from it: a pool busy with requests does not make the
/// server look unreachable), and opened again after a failure.
struct Line {
    pool: PgPool,
    conn: Option<AsyncPgConnection>,
}

impl Line {
    fn to(pool: &PgPool) -> Self {
        Line {
            pool: pool.clone(),
            conn: None,
        }
    }

    /// One row of `query`, within [`CHECK_TIMEOUT`] (`None`: no connection, a failed
    /// statement or no answer in time; the connection is then dropped).
    async fn ask<T>(&mut self, query: BoxedSqlQuery<'static, Pg, SqlQuery>) -> Option<T>
    where
        T: QueryableByName<Pg> + Send + 'static,
    {
        // Here only: its `load` would shadow the atomics' above.
        use diesel_async::RunQueryDsl;
        let (pool, slot) = (&self.pool, &mut self.conn);
        let answer = async {
            if slot.is_none() {
                *slot = Some(pool.manager().create().await.ok()?);
            }
            query.get_result(slot.as_mut()?).await.ok()
        };
        let row = tokio::time::timeout(CHECK_TIMEOUT, answer)
            .await
            .ok()
            .flatten();
        if row.is_none() {
            self.conn = None;
        }
        row
    }

    /// Whether this server (the replica) has replayed up to `position` of the primary's
    /// WAL (`None`: it could not be asked).
    async fn has_replayed(&mut self, position: &str) -> Option<bool> {
        // NULL when the server is not replaying (not a standby).
        let query = diesel::sql_query(
            "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn OR NOT pg_is_in_recovery() AS caught_up",
        )
        .into_boxed()
        .bind::<Text, _>(position.to_owned());
        let row: CaughtUp = self.ask(query).await?;
        Some(row.caught_up.unwrap_or(true))
    }

    /// This server's (the primary's) WAL position now (`None`: it could not be asked).
    async fn position(&mut self) -> Option<String> {
        let query = diesel::sql_query("SELECT pg_current_wal_lsn()::text AS lsn").into_boxed();
        let row: Position = self.ask(query).await?;
        Some(row.lsn)
    }
}

/// Checks the replica `every` so often until it is dropped: usable when it has replayed
/// what the primary had written at the check before.
async fn watch(replica: Weak<Replica>, primary: PgPool, every: Duration) {
    let mut primary = Line::to(&primary);
    let mut standby = match replica.upgrade() {
        Some(replica) => Line::to(&replica.pool),
        None => return,
    };
    let started = Instant::now();
    let mut target = primary.position().await;
    loop {
        let usable = match &target {
            Some(position) => standby.has_replayed(position).await == Some(true),
            // The primary could not say: the primary's own reads fail as well.
            None => false,
        };
        let Some(replica) = replica.upgrade() else {
            return;
        };
        if replica.usable.swap(usable, Ordering::Relaxed) != usable {
            match usable {
                true => tracing::info!("reading from the replica"),
                false => {
                    tracing::warn!("the replica is unreachable or behind: reading from the primary")
                }
            }
        }
        drop(replica);
        // Warming up: the first target is the primary's position at start, younger than
        // a check's interval; until the replica has replayed it, ask again soon (else a
        // replica a moment behind at start would wait a whole interval).
        let warming_up = !usable && started.elapsed() < every;
        if warming_up {
            tokio::time::sleep(every.min(WARM_UP_CHECK)).await;
            continue;
        }
        if let Some(position) = primary.position().await {
            target = Some(position);
        }
        tokio::time::sleep(every).await;
    }
}

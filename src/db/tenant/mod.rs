//! The tenant-scoped handle: the only way resolvers and domain operations reach the
//! database. It cannot be built without a tenant; all work runs in transactions that
//! first set `app.tenant_id` transaction-locally (row-level security reads it), so the
//! setting never outlives them: a pooled connection never carries one tenant's setting
//! into another's request. Operations receive a [`Tenant`] token and filter by it as
//! well: isolation is enforced twice.
//!
//! Two modes. A handle from [`TenantDb::new`] (jobs, subscriptions) runs each unit of
//! work as its own transaction on a pooled connection. A handle from
//! [`TenantDb::for_request`] (one HTTP request) holds at most one connection: its reads
//! share one read-only repeatable-read transaction, so the whole response comes from one
//! snapshot and costs one `BEGIN`/`COMMIT` instead of one per loader batch; a write ends
//! that read transaction (in the round trip that begins the write's own transaction on
//! the same connection); later reads open a new snapshot that sees it.
//! [`TenantDb::finish`] returns the connection. An HTTP request's snapshot begins with
//! its API key lookup ([`begin_request_snapshot`]), or, for a key the server has seen
//! recently, with the key's confirmation ([`RequestStart::Unconfirmed`]): sent with the
//! request's first statement, and proven by that statement's success.
//!
//! Parts: this file, the handle's API; [`session`], the connection a request holds and its
//! caller's confirmation; [`transaction`], how snapshots and writes begin (pipelined);
//! [`group`], read groups (queries of one tenant and role that arrive together);
//! [`wire`], what all this assumes of diesel-async beyond its documented API, each
//! assumption with a test that fails if an upgrade breaks it.

use std::hash::Hash;
use std::sync::Arc;

use diesel::connection::TransactionDepthChange;
use diesel::QueryResult;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{
    AnsiTransactionManager, AsyncPgConnection, SimpleAsyncConnection, TransactionManager,
};
use futures_util::future::{BoxFuture, FutureExt};
use scoped_futures::{ScopedBoxFuture, ScopedFutureExt};
use tokio::sync::{oneshot, Mutex, Notify, OwnedMutexGuard, OwnedSemaphorePermit};
use uuid::Uuid;

pub mod group;
mod session;
mod transaction;
pub mod wire;

use self::group::{Gate, ReadGroup, ReadGroups};
use self::session::*;
pub use self::transaction::*;
use self::wire::{in_transaction, record_depth, send_unanswered};
use super::prefetch::Prefetched;
use super::share::TenantShares;
use super::PgPool;
use crate::error::AppError;

/// What a unit of work may fail with. A failure rolls its transaction back, unless the
/// error says the work kept something to commit (an idempotency key's recorded answer:
/// see [`crate::domain::idempotency`]).
pub trait WorkError: From<AppError> {
    fn commits(&self) -> bool {
        false
    }
}

impl WorkError for AppError {}

/// A unit of work on a tenant's connection, answering `T`: what [`TenantDb::run`],
/// [`TenantDb::query`] and the mutation helpers take (`|conn, scope| async move { … }
/// .scope_boxed()`).
pub trait Work<'a, T>:
    for<'r> FnOnce(&'r mut AsyncPgConnection, Tenant) -> ScopedBoxFuture<'a, 'r, T> + Send + 'a
{
}

impl<'a, T, F> Work<'a, T> for F where
    F: for<'r> FnOnce(&'r mut AsyncPgConnection, Tenant) -> ScopedBoxFuture<'a, 'r, T> + Send + 'a
{
}

/// Proof that the work runs for one tenant. Only this module creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tenant(Uuid);

impl Tenant {
    pub fn id(self) -> Uuid {
        self.0
    }
}

/// How a request's handle starts ([`TenantDb::for_request`]).
pub enum RequestStart<'g> {
    /// A caller known to be who it says, no connection held: the first read takes one.
    Fresh,
    /// On the connection the request's API key was looked up on, either outside any
    /// transaction or inside the read snapshot that lookup began for this tenant
    /// ([`begin_request_snapshot`]).
    LookedUp(Object<AsyncPgConnection>),
    /// A caller the database has not confirmed yet: `statement` confirms it and scopes
    /// the transaction it runs in to its tenant, and fails (aborting that transaction)
    /// unless the caller is who the request says. It is sent with the request's first
    /// statement, as the read snapshot begins on `conn` (outside any transaction; without
    /// one, the request takes one from the pool when it first needs it); nothing is
    /// written, and [`TenantDb::confirmed`] is false, until a statement after it has
    /// succeeded.
    Unconfirmed {
        conn: Option<Object<AsyncPgConnection>>,
        statement: String,
    },
    /// A read-only request of an unconfirmed caller (`statement` confirms it, as for
    /// `Unconfirmed`) in the read group `group` (one tenant and role: see
    /// [`crate::db::group`]): it shares the group's connection and snapshot, its
    /// confirmation goes with the other members' in one message, and it writes nothing.
    Grouped {
        groups: &'g ReadGroups,
        group: String,
        statement: String,
    },
}

#[derive(Clone)]
pub struct TenantDb {
    pool: PgPool,
    tenant: Tenant,
    session: Option<Arc<Mutex<Session>>>,
    /// The read group whose session this request shares, if it joined one.
    group: Option<Arc<ReadGroup>>,
    /// Rows the request's reads filed for later resolvers (request handles only).
    prefetched: Option<Arc<Prefetched>>,
    /// Woken after every committed write (the event sequencer waits on it).
    commits: Option<Arc<Notify>>,
}

impl TenantDb {
    /// A handle whose every unit of work is its own transaction (jobs, subscriptions,
    /// tests).
    pub fn new(pool: PgPool, tenant_id: Uuid) -> Self {
        Self {
            pool,
            tenant: Tenant(tenant_id),
            session: None,
            group: None,
            prefetched: None,
            commits: None,
        }
    }

    /// Wakes `signal` after every write this handle commits: the events it recorded can
    /// be numbered and published at once instead of at the sequencer's next tick.
    pub fn signalling_commits(self, signal: Arc<Notify>) -> Self {
        Self {
            commits: Some(signal),
            ..self
        }
    }

    /// The handle of one HTTP request, started as `start` says: one connection, one
    /// read snapshot at a time. Call [`TenantDb::finish`] when the request is done.
    pub fn for_request(pool: PgPool, tenant_id: Uuid, start: RequestStart<'_>) -> Self {
        let session = |conn, caller| Arc::new(Mutex::new(Session::new(conn, caller, None)));
        let (session, group) = match start {
            RequestStart::Fresh => (Arc::default(), None),
            RequestStart::LookedUp(conn) => (session(Some(conn), Caller::Confirmed), None),
            RequestStart::Unconfirmed { conn, statement } => {
                (session(conn, Caller::Unconfirmed(statement)), None)
            }
            RequestStart::Grouped {
                groups,
                group,
                statement,
            } => {
                let group = groups.join(&group, &statement, |gate| {
                    Session::new(None, Caller::Unconfirmed(statement.clone()), Some(gate))
                });
                (group.session.clone(), Some(group))
            }
        };
        Self {
            session: Some(session),
            group,
            prefetched: Some(Arc::default()),
            ..Self::new(pool, tenant_id)
        }
    }

    /// Holds the request's connection under its tenant's share of the pool (see
    /// [`crate::db::share`]): one taken later waits for the share first; one the request
    /// already holds (its key was looked up on it, before the tenant was known) keeps it
    /// if the share has room, and otherwise is given back (its snapshot rolled back: the
    /// caller stays confirmed) and taken again under the share when first needed.
    pub async fn share_pool(&self, shares: &Arc<TenantShares>) {
        let Some(session) = &self.session else {
            return;
        };
        // A fresh session, or a read group's that its first member already set (the
        // members are of one tenant).
        let Ok(mut session) = session.try_lock() else {
            return;
        };
        if session.share.is_some() {
            return;
        }
        session.share = Some((shares.clone(), self.tenant.0));
        if session.conn.is_some() {
            match shares.try_acquire(self.tenant.0) {
                Some(permit) => session.share_permit = Some(permit),
                None => session.give_back().await,
            }
        }
    }

    /// A request's handle on `session` (its own, or its read group's).
    /// Whether the database confirmed the request's caller (confirming it now if no
    /// statement has yet).
    pub async fn confirmed(&self) -> bool {
        matches!(self.confirmation().await, Ok(true))
    }

    /// [`TenantDb::confirmed`], or why the caller cannot be confirmed now (no connection
    /// to be had: the pool or the tenant's share busy). The handler asks before it sends
    /// a response: a refused caller's request is answered afresh, one that cannot be
    /// confirmed gets that error and no data.
    pub async fn confirmation(&self) -> Result<bool, AppError> {
        let Some(session) = &self.session else {
            return Ok(true);
        };
        let mut session = session.lock().await;
        if let (Some(busy), Caller::Unconfirmed(_)) = (&session.busy, &session.caller) {
            return Err(busy.clone());
        }
        match session.confirm(&self.pool).await {
            Ok(()) => Ok(true),
            Err(AppError::Unauthenticated(_)) => Ok(false),
            Err(busy) => Err(busy),
        }
    }

    pub fn tenant(&self) -> Tenant {
        self.tenant
    }

    /// Where this request's reads file rows for later resolvers (`None` outside requests).
    pub fn prefetched(&self) -> Option<&Arc<Prefetched>> {
        self.prefetched.as_ref()
    }

    /// Runs `work` (which may write) as one transaction scoped to this tenant: on a pooled
    /// connection, or on the request's after ending its read snapshot.
    pub async fn run<'a, R, E, F>(&self, work: F) -> Result<R, E>
    where
        F: Work<'a, Result<R, E>>,
        R: Send + 'a,
        E: WorkError + Send + 'a,
    {
        let result = match &self.session {
            None => {
                let mut conn = crate::db::checkout(&self.pool)
                    .await
                    .map_err(|e| E::from(e.into()))?;
                in_tenant_transaction(&mut conn, self.tenant.0, work).await
            }
            Some(_) if self.group.is_some() => {
                return Err(E::from(AppError::internal(
                    &"a write in a read-only request",
                )));
            }
            Some(session) => {
                let mut session = session.lock().await;
                // Under the connection's lock: rows filed by a read that held it are gone
                // before this write starts (readers file while they hold the lock).
                if let Some(prefetched) = &self.prefetched {
                    prefetched.clear();
                }
                // Nothing is written for a caller the database has not confirmed.
                session.confirm(&self.pool).await?;
                // A read snapshot still open on the connection ends as the write begins.
                let conn = session.connection(&self.pool).await?;
                let result = write_transaction(conn, self.tenant.0, work).await;
                if result.is_err() {
                    session.conn = None;
                }
                result
            }
        };
        if let (Ok(_), Some(commits)) = (&result, &self.commits) {
            commits.notify_one();
        }
        result
    }

    /// Runs a read (returning a Diesel or an application result): its own transaction, or
    /// the request's read snapshot. Anything that writes goes through [`TenantDb::run`].
    pub async fn query<'a, R, E, F>(&self, work: F) -> Result<R, AppError>
    where
        F: Work<'a, Result<R, E>>,
        R: Send + 'a,
        E: Into<AppError> + Send + 'a,
    {
        let Some(session) = &self.session else {
            let mut conn = crate::db::checkout(&self.pool).await?;
            return in_tenant_transaction(&mut conn, self.tenant.0, |conn, scope| {
                async move { work(conn, scope).await.map_err(Into::into) }.scope_boxed()
            })
            .await;
        };
        let mut session = session.lock().await;
        read_on(&mut session, &self.pool, self.tenant, |conn, scope| {
            async move { work(conn, scope).await.map_err(Into::into) }.scope_boxed()
        })
        .await
    }

    /// Runs `work` for `item` together with the items of the same `kind` of the other
    /// members of this request's read group: one call of `work` (one statement) for all
    /// of them, in the group's snapshot, once the group has its connection (the items
    /// that arrive while the pool is busy join the call). `work` answers each item, in
    /// order; when it fails, each member gets its error. Outside a group, or when the
    /// shared call leaves the item unanswered, `work` runs for this request's item alone
    /// (as [`TenantDb::query`]).
    pub async fn query_together<K, I, R>(
        &self,
        kind: K,
        item: I,
        work: ReadTogether<K, I, R>,
    ) -> Result<R, AppError>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        I: Clone + Send + 'static,
        R: Send + 'static,
    {
        if let Some(group) = &self.group {
            let (answer, mut answered) = oneshot::channel::<Answer<R>>();
            group.wait(kind.clone(), item.clone(), answer);
            let found = tokio::select! {
                biased;
                found = &mut answered => found.ok(),
                session = group.session.clone().lock_owned() => {
                    let read = read_together(session, group.clone(), self.pool.clone(), self.tenant, kind.clone(), work);
                    tokio::spawn(read);
                    answered.await.ok()
                }
            };
            if let Some(found) = found {
                return found;
            }
        }
        let mut found = self
            .query(|conn, scope| {
                async move { work(conn, scope, &kind, vec![item]).await }.scope_boxed()
            })
            .await?;
        found
            .pop()
            .ok_or_else(|| AppError::internal(&"a read answered no item"))
    }

    /// Whether this request shares a read group (its identical queries may then be
    /// answered by another member's run: [`TenantDb::once`]).
    pub fn grouped(&self) -> bool {
        self.group.is_some()
    }

    /// `run`'s answer, run once for the members of this request's read group that ask
    /// with the same `identity` while it runs (see [`group::Runs::once`]); outside a
    /// group, `run` alone.
    pub async fn once<R, F>(&self, identity: String, run: F) -> R
    where
        R: Clone + Send + 'static,
        F: std::future::Future<Output = R>,
    {
        match &self.group {
            Some(group) => group.runs.once(identity, run).await,
            None => run.await,
        }
    }

    /// Ends the request: commits its read snapshot and returns the connection to the
    /// pool (a read group's, with its last member). (A request dropped half-way drops the
    /// connection inside its transaction; the pool sees that and discards it. A read
    /// group's session ends its snapshot when its last handle drops.)
    pub async fn finish(&self) {
        if let Some(session) = &self.session {
            let mut session = session.lock().await;
            // A read group's snapshot ends with its last member.
            if self.group.as_ref().is_none_or(|group| group.gate.leave()) {
                session.end_read();
                session.conn = None;
                session.slot = None;
            }
        }
    }
}

/// A read in the snapshot of `session` (beginning it, with the caller's confirmation if
/// that is still due, when none is open).
async fn read_on<'a, R, F>(
    session: &mut Session,
    pool: &PgPool,
    tenant: Tenant,
    work: F,
) -> Result<R, AppError>
where
    F: Work<'a, Result<R, AppError>>,
    R: Send + 'a,
{
    // The caller's confirmation, if still due, opens the snapshot ahead of `work`'s
    // first statement (in the same round trip).
    let confirming = session.send_confirmation(pool).await?;
    let conn = session.connection(pool).await?;
    let mut begun = Ok(());
    if !in_transaction(conn) {
        begun =
            AnsiTransactionManager::begin_transaction_sql(conn, &begin_sql(tenant.0, true)).await;
    }
    let result = match begun {
        Ok(()) => work(conn, tenant).await,
        Err(e) => Err(AppError::from(e)),
    };
    if confirming {
        session.settle(result.is_ok()).await;
        return result;
    }
    if result.is_err() {
        // The snapshot may be aborted: roll it back and give the connection up (the
        // pool checks it); the next read opens another.
        let _ = AnsiTransactionManager::rollback_transaction(conn).await;
        session.conn = None;
    }
    result
}

/// The shared read of [`TenantDb::query_together`], on the group's session (held): waits
/// for the connection, then takes every item of `kind` waiting by then and answers each
/// (with the read's error if it failed: the members share its snapshot, and its
/// confirmation of their caller). Spawned, so that it completes even if the request that
/// started it goes away; an item it leaves unanswered runs alone.
async fn read_together<K, I, R>(
    mut session: OwnedMutexGuard<Session>,
    group: Arc<ReadGroup>,
    pool: PgPool,
    tenant: Tenant,
    kind: K,
    work: ReadTogether<K, I, R>,
) where
    K: Hash + Eq + Send + Sync + 'static,
    I: Send + 'static,
    R: Send + 'static,
{
    let connected = session.connection(&pool).await.map(|_| ());
    let waiting = group.take::<K, I, Answer<R>>(&kind);
    let (items, answers): (Vec<I>, Vec<_>) = waiting.into_iter().unzip();
    let found = match connected {
        Ok(()) if items.is_empty() => Ok(Vec::new()),
        Ok(()) => {
            read_on(&mut session, &pool, tenant, |conn, scope| {
                async move {
                    work(conn, scope, &kind, items)
                        .await
                        .map_err(AppError::from)
                }
                .scope_boxed()
            })
            .await
        }
        Err(error) => Err(error),
    };
    match found {
        Ok(found) => {
            for (answer, found) in answers.into_iter().zip(found) {
                let _ = answer.send(Ok(found));
            }
        }
        Err(error) => {
            for answer in answers {
                let _ = answer.send(Err(error.clone()));
            }
        }
    }
    // Every answer is sent (or dropped) before the session is let go: a member that takes
    // the session next finds its answer already there.
    drop(session);
}

/// The read of [`TenantDb::query_together`]: answers each item of one kind, in order.
pub type ReadTogether<K, I, R> = for<'r> fn(
    &'r mut AsyncPgConnection,
    Tenant,
    &'r K,
    Vec<I>,
) -> BoxFuture<'r, QueryResult<Vec<R>>>;

/// What a member of a read group receives for its item.
type Answer<R> = Result<R, AppError>;

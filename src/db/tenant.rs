//! The tenant-scoped handle: the only way resolvers and domain operations reach the
//! database. It cannot be built without a tenant; every unit of work it runs is one
//! transaction that first sets `app.tenant_id` transaction-locally (row-level security
//! reads it), so the setting never outlives the work: a pooled connection never carries
//! one tenant's setting into another's request. Operations receive a [`Tenant`] token and
//! filter by it as well: isolation is enforced twice.

use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};
use scoped_futures::{ScopedBoxFuture, ScopedFutureExt};
use uuid::Uuid;

use super::PgPool;
use crate::error::AppError;

/// Proof that the work runs for one tenant. Only this module creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tenant(Uuid);

impl Tenant {
    pub fn id(self) -> Uuid {
        self.0
    }
}

#[derive(Clone)]
pub struct TenantDb {
    pool: PgPool,
    tenant: Tenant,
}

impl TenantDb {
    /// Built by authentication once a key has resolved to `tenant_id` (and by tests).
    pub fn new(pool: PgPool, tenant_id: Uuid) -> Self {
        Self {
            pool,
            tenant: Tenant(tenant_id),
        }
    }

    pub fn tenant(&self) -> Tenant {
        self.tenant
    }

    /// Runs `work` as one transaction scoped to this tenant.
    pub async fn run<'a, R, E, F>(&self, work: F) -> Result<R, E>
    where
        F: for<'r> FnOnce(
                &'r mut AsyncPgConnection,
                Tenant,
            ) -> ScopedBoxFuture<'a, 'r, Result<R, E>>
            + Send
            + 'a,
        R: Send + 'a,
        E: From<AppError> + Send + 'a,
    {
        let mut conn = self.pool.get().await.map_err(|e| E::from(e.into()))?;
        in_tenant_transaction(&mut conn, self.tenant.0, work).await
    }
}

impl TenantDb {
    /// Runs a read (anything returning a Diesel result) as one unit of work.
    pub async fn query<'a, R, F>(&self, work: F) -> Result<R, AppError>
    where
        F: for<'r> FnOnce(
                &'r mut AsyncPgConnection,
                Tenant,
            ) -> ScopedBoxFuture<'a, 'r, diesel::QueryResult<R>>
            + Send
            + 'a,
        R: Send + 'a,
    {
        self.run(|conn, scope| {
            async move { work(conn, scope).await.map_err(AppError::from) }.scope_boxed()
        })
        .await
    }
}

/// Runs `work` in a transaction on `conn` with `app.tenant_id` set for that transaction
/// only. Used by [`TenantDb`] and by administrative commands on an owner connection.
pub async fn in_tenant_transaction<'a, R, E, F>(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    work: F,
) -> Result<R, E>
where
    F: for<'r> FnOnce(&'r mut AsyncPgConnection, Tenant) -> ScopedBoxFuture<'a, 'r, Result<R, E>>
        + Send
        + 'a,
    R: Send + 'a,
    E: From<AppError> + Send + 'a,
{
    let db_error = |e: diesel::result::Error| E::from(AppError::from(e));
    // The transaction manager tracks the open transaction: if this future is dropped
    // half-way, the pool sees it and discards the connection instead of reusing it.
    // One round trip opens the transaction and sets the tenant. A Uuid renders as 36
    // hex-and-dash characters: nothing to escape.
    let begin = format!("BEGIN; SELECT set_config('app.tenant_id', '{tenant_id}', true)");
    AnsiTransactionManager::begin_transaction_sql(conn, &begin)
        .await
        .map_err(db_error)?;
    let result = work(conn, Tenant(tenant_id)).await;
    match result {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(conn)
                .await
                .map_err(db_error)?;
            Ok(value)
        }
        Err(error) => {
            // A failed rollback marks the connection broken; the pool then drops it.
            let _ = AnsiTransactionManager::rollback_transaction(conn).await;
            Err(error)
        }
    }
}

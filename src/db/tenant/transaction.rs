//! Transactions scoped to a tenant: how a request's read snapshot and a write begin
//! (pipelined with the request's first statement), and the unit of work of jobs and
//! subscriptions.

use super::*;

/// How a request's read snapshot begins.
pub(super) const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Opens a transaction and sets the tenant in one round trip. A Uuid renders as 36
/// hex-and-dash characters: nothing to escape.
pub(super) fn begin_sql(tenant_id: Uuid, read_only: bool) -> String {
    let begin = if read_only { BEGIN_READ } else { "BEGIN" };
    format!("{begin}; SELECT set_config('app.tenant_id', '{tenant_id}', true)")
}

/// Opens a request's read snapshot on `conn` with its first statement, `lookup`, in one
/// round trip: the `BEGIN` is sent pipelined ahead of the lookup's statement. The lookup
/// is the API key's, whose database function scopes the transaction to the key's tenant
/// (it sets `app.tenant_id`). When it finds nothing (an unknown key) or fails, the
/// snapshot is rolled back, so the connection can go back to the pool and be reused. On
/// `Ok(Some)` the connection is inside the snapshot: hand it to
/// [`RequestStart::LookedUp`](super::RequestStart::LookedUp). Unless `pipelined`
/// ([`Mechanism::PipelinedBegin`](crate::speed::Mechanism::PipelinedBegin)), the lookup
/// is sent once the `BEGIN` is answered: two round trips.
pub async fn begin_request_snapshot<T, F>(
    conn: &mut AsyncPgConnection,
    pipelined: bool,
    lookup: F,
) -> QueryResult<Option<T>>
where
    F: for<'c> FnOnce(&'c AsyncPgConnection) -> BoxFuture<'c, QueryResult<Option<T>>>,
{
    let shared: &AsyncPgConnection = conn;
    let mut for_begin = shared;
    let (begun, found) = match pipelined {
        // `join` polls the `BEGIN` first, and each future sends its message on its first
        // poll.
        true => {
            futures_util::join!(
                SimpleAsyncConnection::batch_execute(&mut for_begin, BEGIN_READ),
                lookup(shared)
            )
        }
        false => {
            SimpleAsyncConnection::batch_execute(&mut for_begin, BEGIN_READ).await?;
            (Ok(()), lookup(shared).await)
        }
    };
    begun?;
    record_depth(conn, TransactionDepthChange::IncreaseDepth)?;
    match found {
        Ok(Some(found)) => Ok(Some(found)),
        Ok(None) => {
            AnsiTransactionManager::rollback_transaction(conn).await?;
            Ok(None)
        }
        Err(e) => {
            // A failed rollback marks the connection broken; the pool then drops it.
            let _ = AnsiTransactionManager::rollback_transaction(conn).await;
            Err(e)
        }
    }
}

/// Starts a write transaction for `tenant_id` on `conn`. If `conn` is inside a request's
/// read snapshot, that snapshot is committed in the same round trip (the transaction
/// manager's depth stays 1: one transaction ends as the next begins).
pub(super) async fn begin_write(conn: &mut AsyncPgConnection, tenant_id: Uuid) -> QueryResult<()> {
    if in_transaction(conn) {
        let sql = format!("COMMIT; {}", begin_sql(tenant_id, false));
        conn.batch_execute(&sql).await
    } else {
        AnsiTransactionManager::begin_transaction_sql(conn, &begin_sql(tenant_id, false)).await
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
    F: super::Work<'a, Result<R, E>>,
    R: Send + 'a,
    E: WorkError + Send + 'a,
{
    if in_transaction(conn) {
        return Err(E::from(AppError::from(
            diesel::result::Error::AlreadyInTransaction,
        )));
    }
    write_transaction(conn, tenant_id, work).await
}

/// [`in_tenant_transaction`], except that a read snapshot open on `conn` (a request's)
/// is committed as the write transaction begins.
pub(super) async fn write_transaction<'a, R, E, F>(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    work: F,
) -> Result<R, E>
where
    F: super::Work<'a, Result<R, E>>,
    R: Send + 'a,
    E: WorkError + Send + 'a,
{
    let db_error = |e: diesel::result::Error| E::from(AppError::from(e));
    // The transaction manager tracks the open transaction: if this future is dropped
    // half-way, the pool sees it and discards the connection instead of reusing it.
    begin_write(conn, tenant_id).await.map_err(db_error)?;
    let result = work(conn, Tenant(tenant_id)).await;
    match result {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(conn)
                .await
                .map_err(db_error)?;
            Ok(value)
        }
        Err(error) if error.commits() => {
            AnsiTransactionManager::commit_transaction(conn)
                .await
                .map_err(db_error)?;
            Err(error)
        }
        Err(error) => {
            // A failed rollback marks the connection broken; the pool then drops it.
            let _ = AnsiTransactionManager::rollback_transaction(conn).await;
            Err(error)
        }
    }
}

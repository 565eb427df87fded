//! What the request path assumes of diesel-async's connection and of Diesel's transaction
//! manager beyond their documented use, in one place. Each assumption has a test in
//! `tests/integration/tenancy/wire.rs` that fails if a dependency upgrade breaks it:
//!
//! - a statement's message is written to the socket on the first poll of its future, and
//!   the connection's driver reads (and drops) the answer of a future dropped after that
//!   poll, so the next statement's answer is its own ([`send_unanswered`]);
//! - futures on one connection polled by `join!` send their messages in the order they are
//!   first polled, so a `BEGIN` polled first opens the transaction the next statement runs
//!   in (`begin_request_snapshot`);
//! - a failed statement sent that way aborts its transaction, so the next statement in it
//!   fails and the failure is seen there (`Session::settle`);
//! - the transaction manager's depth can be changed by hand for a transaction begun or
//!   ended by SQL sent past it, and its own `commit_transaction` / `rollback_transaction`
//!   then end that transaction ([`record_depth`], [`in_transaction`]).

use diesel::connection::{TransactionDepthChange, TransactionManagerStatus};
use diesel::QueryResult;
use diesel_async::{
    AnsiTransactionManager, AsyncPgConnection, SimpleAsyncConnection, TransactionManager,
};
use futures_util::FutureExt;

/// Sends `sql` on `conn` without waiting for its answer: the first poll sends the
/// message, and the connection's driver reads and drops the answer. `false` when it could
/// not be sent, or when its failure came back within that first poll (the driver runs on
/// another thread): either way, what it was to do is not done.
pub fn send_unanswered(conn: &AsyncPgConnection, sql: &str) -> bool {
    let mut sender = conn;
    !matches!(
        SimpleAsyncConnection::batch_execute(&mut sender, sql).now_or_never(),
        Some(Err(_))
    )
}

/// Whether `conn`'s transaction manager counts a transaction open.
pub fn in_transaction(conn: &mut AsyncPgConnection) -> bool {
    let status = AnsiTransactionManager::transaction_manager_status_mut(conn);
    !matches!(status.transaction_depth(), Ok(None))
}

/// Records in `conn`'s transaction manager a transaction begun or ended by SQL sent past
/// it (the manager tracks only what its own calls do); a manager in error refuses.
pub fn record_depth(
    conn: &mut AsyncPgConnection,
    change: TransactionDepthChange,
) -> QueryResult<()> {
    match AnsiTransactionManager::transaction_manager_status_mut(conn) {
        TransactionManagerStatus::Valid(status) => status.change_transaction_depth(change),
        TransactionManagerStatus::InError => Err(diesel::result::Error::BrokenTransactionManager),
    }
}

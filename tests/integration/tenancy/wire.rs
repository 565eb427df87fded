//! What the request path assumes of diesel-async and Diesel's transaction manager beyond
//! their documented use (`db::tenant::wire`): each test fails if an upgrade breaks one.

use super::*;
use diesel::connection::TransactionDepthChange;
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};
use futures_util::FutureExt;
use growthgraph::db::tenant::begin_request_snapshot;
use growthgraph::db::tenant::wire::{in_transaction, record_depth, send_unanswered};

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

async fn setting(conn: &mut AsyncPgConnection, name: &str) -> diesel::QueryResult<String> {
    diesel::sql_query(format!("SELECT current_setting('{name}') AS value"))
        .get_result::<Setting>(conn)
        .await
        .map(|s| s.value)
}

/// Begins a transaction past the manager (`begin`, sent unanswered) and records it.
fn begin_by_hand(conn: &mut AsyncPgConnection, begin: &str) {
    assert!(send_unanswered(conn, begin));
    record_depth(conn, TransactionDepthChange::IncreaseDepth).unwrap();
}

/// Rolls the connection's transaction back through the manager, which then counts none.
async fn roll_back(conn: &mut AsyncPgConnection) {
    AnsiTransactionManager::rollback_transaction(conn)
        .await
        .unwrap();
    assert!(!in_transaction(conn));
}

async fn connection(app: &TestApp) -> impl std::ops::DerefMut<Target = AsyncPgConnection> {
    app.pool.get().await.unwrap()
}

/// A statement's message leaves on the first poll of its future, its answer is read and
/// dropped by the connection, and the next statement gets its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_statement_is_sent_at_once_and_its_answer_skipped() {
    let app = TestApp::start().await;
    let mut conn = connection(&app).await;
    assert!(send_unanswered(
        &conn,
        "SET application_name = 'wire-probe'"
    ));
    assert!(send_unanswered(&conn, "SELECT 'an answer nobody reads'"));
    assert_eq!(
        setting(&mut conn, "application_name").await.unwrap(),
        "wire-probe"
    );
    assert_eq!(
        setting(&mut conn, "application_name").await.unwrap(),
        "wire-probe"
    );
}

/// Futures on one connection polled by `join!` send in the order first polled: the
/// request snapshot's `BEGIN` opens the transaction its lookup runs in, in one round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_polled_first_opens_the_transaction_of_the_lookup_sent_with_it() {
    let app = TestApp::start().await;
    let mut conn = connection(&app).await;
    let found = begin_request_snapshot(&mut conn, true, |conn| {
        async move {
            let mut conn = conn;
            let isolation = diesel::sql_query(
                "SELECT current_setting('transaction_isolation') || ' ' || \
                 current_setting('transaction_read_only') AS value",
            )
            .get_result::<Setting>(&mut conn)
            .await?;
            Ok(Some(isolation.value))
        }
        .boxed()
    })
    .await
    .unwrap();
    assert_eq!(found.as_deref(), Some("repeatable read on"));
    assert!(in_transaction(&mut conn), "the manager counts the snapshot");
    roll_back(&mut conn).await;
    assert_eq!(
        setting(&mut conn, "transaction_read_only").await.unwrap(),
        "off"
    );
}

/// A failed statement sent unanswered aborts its transaction: the next statement in it
/// fails, which is where the failure is seen; the transaction then rolls back and the
/// connection serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_failure_fails_the_next_statement_of_its_transaction() {
    let app = TestApp::start().await;
    let mut conn = connection(&app).await;
    begin_by_hand(&mut conn, "BEGIN");
    // Sent; on a fast machine its failure may already be back by the end of the first
    // poll (then `false`): the transaction is aborted either way.
    send_unanswered(&conn, "SELECT 1 / 0");
    let next = setting(&mut conn, "application_name").await;
    assert!(next.is_err(), "the transaction is aborted: {next:?}");
    roll_back(&mut conn).await;
    assert!(setting(&mut conn, "application_name").await.is_ok());
}

/// A transaction begun or ended by SQL sent past the manager, recorded by hand, is the
/// one the manager's own commit ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_depth_recorded_by_hand_is_the_transaction_the_manager_commits() {
    let app = TestApp::start().await;
    let mut conn = connection(&app).await;
    assert!(!in_transaction(&mut conn));
    begin_by_hand(&mut conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    assert!(in_transaction(&mut conn));
    assert_eq!(
        setting(&mut conn, "transaction_read_only").await.unwrap(),
        "on"
    );
    AnsiTransactionManager::commit_transaction(&mut *conn)
        .await
        .unwrap();
    assert!(!in_transaction(&mut conn));
    assert_eq!(
        setting(&mut conn, "transaction_read_only").await.unwrap(),
        "off"
    );

    // And ended by SQL: `COMMIT` sent unanswered, the depth recorded down.
    begin_by_hand(&mut conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    assert!(send_unanswered(&conn, "COMMIT"));
    record_depth(&mut conn, TransactionDepthChange::DecreaseDepth).unwrap();
    assert!(!in_transaction(&mut conn));
    assert_eq!(
        setting(&mut conn, "transaction_read_only").await.unwrap(),
        "off"
    );
}

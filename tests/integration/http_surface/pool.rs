//! The pool as requests use it: the connection returned last handed out first, refused bodies and ended snapshots leaving clean connections.

use super::*;

/// Every connection of the test server's pool of 8, held at once (so nothing new is
/// created meanwhile).
async fn whole_pool(app: &TestApp) -> Vec<Object<AsyncPgConnection>> {
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(app.pool.get().await.unwrap());
    }
    held
}

/// The backend of every connection in the test server's pool.
async fn pool_backends(app: &TestApp) -> Vec<i32> {
    let mut pids = Vec::new();
    for conn in whole_pool(app).await.iter_mut() {
        pids.push(backend_pid(conn).await);
    }
    pids.sort_unstable();
    pids
}

/// The pool hands out the connection returned last: at light load requests keep reusing
/// the same warm backend instead of cycling through every idle one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_hands_out_the_connection_returned_last() {
    let app = TestApp::start().await;
    let mut held = whole_pool(&app).await;
    let mut pids = Vec::new();
    for conn in held.iter_mut() {
        pids.push(backend_pid(conn).await);
    }
    // Returned in the order they were taken: the last one back is the last taken.
    for conn in held.drain(..) {
        drop(conn);
    }
    for _ in 0..3 {
        let mut conn = app.pool.get().await.unwrap();
        assert_eq!(
            backend_pid(&mut conn).await,
            pids[7],
            "the one returned last"
        );
    }
    let mut first = app.pool.get().await.unwrap();
    let mut second = app.pool.get().await.unwrap();
    assert_eq!(
        backend_pid(&mut second).await,
        pids[6],
        "then the one before it"
    );
    drop(second);
    assert_eq!(backend_pid(&mut first).await, pids[7]);
}

/// A body refused after the key was looked up (malformed JSON, a batch over the limit):
/// the lookup had begun the request's read snapshot, and the refusal ends it, so the
/// pool keeps its connections instead of discarding and replacing one per refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bodies_after_the_key_lookup_keep_the_pools_connections() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let before = pool_backends(&app).await;
    let one = json!({ "query": "{ viewer { tenant { id } } }" });
    for _ in 0..4 {
        let response = app
            .client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&a.admin_key)
            .header("content-type", "application/json")
            .body("{ not json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let (status, response) = app
            .post(Some(&a.admin_key), Value::Array(vec![one.clone(); 11]))
            .await;
        assert_eq!(
            (status, error_code(&response)),
            (400, Some("BAD_USER_INPUT"))
        );
        let (status, response) = app.post(Some(&a.admin_key), one.clone()).await;
        assert_eq!(status, 200);
        assert!(response["errors"].is_null(), "{response}");
    }
    assert_eq!(
        pool_backends(&app).await,
        before,
        "no connection was replaced"
    );
}

/// A request's read snapshot ends as the request does (its `COMMIT` is sent without
/// waiting for the answer): the connection goes back to the pool outside any transaction
/// and without a tenant, is kept rather than replaced, and the next request on it sees
/// what was committed in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_snapshots_end_with_their_request_and_leave_clean_kept_connections() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let before = pool_backends(&app).await;
    let count = "{ customers(first: 100) { nodes { id } } }";
    let upsert = "mutation($email: String!) { upsertCustomer(input: { email: $email }) { customer { id } userErrors { code } } }";
    let customers = |r: &Value| r["data"]["customers"]["nodes"].as_array().map(Vec::len);
    let (_, r) = app
        .post(Some(&a.admin_key), json!({ "query": count }))
        .await;
    let initial = customers(&r).expect("a page");
    for n in 0..12 {
        // Every connection of the pool serves a read, then the next read sees the write.
        let (status, r) = app
            .post(Some(&a.admin_key), json!({ "query": count }))
            .await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(customers(&r), Some(initial + n), "{r}");
        let email = format!("reader{n}@example.com");
        let w = app
            .gql(&a.admin_key, upsert, json!({ "email": email }))
            .await;
        assert!(
            w["data"]["upsertCustomer"]["customer"]["id"].is_string(),
            "{w}"
        );
    }
    let mut held = whole_pool(&app).await;
    for conn in held.iter_mut() {
        let state = snapshot_state(conn).await;
        let tenant = state.tenant.unwrap_or_default();
        assert_eq!((state.read_only.as_str(), tenant.as_str()), ("off", ""));
    }
    drop(held);
    assert_eq!(
        pool_backends(&app).await,
        before,
        "no connection was replaced"
    );
}

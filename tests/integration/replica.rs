//! `--replica-url`: queries of known keys read from the replica while it keeps up;
//! everything else, and every read while it cannot, goes to the primary.

use std::time::{Duration, Instant};

use diesel_async::SimpleAsyncConnection;
use growthgraph::auth::Role;
use growthgraph::db;
use growthgraph::db::cluster::{Cluster, Durability};
use growthgraph::db::replica::Replica;
use growthgraph::db::tenant::in_tenant_transaction;
use growthgraph::domain::tenancy::ops as tenancy;
use scoped_futures::ScopedFutureExt;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{database_url, fresh_database, TestApp, TEST_SETTINGS};

const UPSERT: &str = "mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) {
    customer { id } userErrors { code } } }";
/// The replica lag the servers here allow (checked every half of it).
const LAG: Duration = Duration::from_secs(1);

const BY_EMAIL: &str = "query($e: String) { customer(email: $e) { email } }";

/// Waits (up to 20 s) until the metric `series` reads `value`.
async fn until_metric(app: &TestApp, series: &str, value: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.metric(series).await != value {
        assert!(Instant::now() < deadline, "{series} never reached {value}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn upsert(app: &TestApp, key: &str, email: &str) {
    let r = app
        .gql(key, UPSERT, json!({ "input": { "email": email } }))
        .await;
    assert!(
        r["data"]["upsertCustomer"]["customer"]["id"].is_string(),
        "{r}"
    );
}

/// The email `customer(email:)` finds (`Null` when none), and whether the replica read it.
async fn find(app: &TestApp, key: &str, email: &str) -> (Value, bool) {
    let before = app.metric("growthgraph_replica_reads_total").await;
    let r = app.gql(key, BY_EMAIL, json!({ "e": email })).await;
    assert!(r["errors"].is_null(), "{r}");
    let after = app.metric("growthgraph_replica_reads_total").await;
    (r["data"]["customer"]["email"].clone(), after > before)
}

/// A fresh primary database with a tenant, and a "replica" that is a copy of it taken
/// then: it never sees a later write, so every answer tells where it was read.
struct FrozenCopy {
    primary: String,
    copy: String,
    /// The tenant's admin key.
    admin: String,
}

/// [`FrozenCopy`], the tenant also holding an admin key (id and secret) per name in
/// `extra_keys` when copied.
async fn primary_and_frozen_copy(extra_keys: &[&str]) -> (FrozenCopy, Vec<(Uuid, String)>) {
    let primary = fresh_database().await;
    let mut conn = db::connect_owner(&primary).await.unwrap();
    let (tenant, admin) = tenancy::create_tenant(&mut conn, "Replicated", None)
        .await
        .unwrap();
    let mut extra = Vec::new();
    for name in extra_keys {
        let (key, secret) = in_tenant_transaction(&mut conn, tenant.id, |conn, scope| {
            tenancy::create_api_key(conn, scope, name, Role::Admin).scope_boxed()
        })
        .await
        .unwrap();
        extra.push((key.id, secret));
    }
    drop(conn); // a database being copied must have no other session
    let name = |url: &str| url.rsplit('/').next().unwrap().to_owned();
    let copy = format!("{}_copy", name(&primary));
    let mut maintenance = db::connect_owner(&database_url("postgres")).await.unwrap();
    maintenance
        .batch_execute(&format!(
            "CREATE DATABASE {copy} TEMPLATE {}",
            name(&primary)
        ))
        .await
        .unwrap();
    let copy = database_url(&copy);
    (
        FrozenCopy {
            primary,
            copy,
            admin,
        },
        extra,
    )
}

/// Whether `app` answers a request with `key` 401.
async fn unauthorized(app: &TestApp, key: &str) -> bool {
    let request = json!({ "query": BY_EMAIL, "variables": { "e": "x@example.com" } });
    app.post(Some(key), request).await.0 == 401
}

/// Waits (up to 5 s) until `check` holds.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_keys_queries_read_from_the_replica_and_everything_else_from_the_primary() {
    let (frozen, _) = primary_and_frozen_copy(&[]).await;
    let key = frozen.admin;
    let app = TestApp::with_replica(frozen.primary, &frozen.copy, LAG).await;
    until_metric(&app, "growthgraph_replica_usable", 1).await;

    // A mutation writes on the primary (the key is looked up there, as every unknown key).
    upsert(&app, &key, "late@example.com").await;
    // A query of the key, known now: the replica's answer, which has no such customer.
    assert_eq!(
        find(&app, &key, "late@example.com").await,
        (Value::Null, true)
    );
    // Many at once (read groups: shared connections and snapshots): all of them there.
    let before = app.metric("growthgraph_replica_reads_total").await;
    let answers = futures_util::future::join_all(
        (0..12).map(|_| app.gql(&key, BY_EMAIL, json!({ "e": "late@example.com" }))),
    )
    .await;
    for r in &answers {
        assert_eq!(r["data"]["customer"], Value::Null, "{r}");
    }
    let routed = app.metric("growthgraph_replica_reads_total").await - before;
    assert_eq!(routed, 12);
    // The same query in a batch (which may write: never on the replica) sees the primary.
    let (_, batch) = app
        .post(
            Some(&key),
            json!([{ "query": BY_EMAIL, "variables": { "e": "late@example.com" } }]),
        )
        .await;
    assert_eq!(
        batch[0]["data"]["customer"]["email"], "late@example.com",
        "{batch}"
    );

    // A key the replica has never seen: its first query is looked up on the primary, its
    // second is sent to the replica, which refuses it; looked up again, it reads the
    // primary. Never a 401.
    let r = app
        .gql(
            &key,
            "mutation { createApiKey(input: { name: \"new\", role: ANALYST }) { secret } }",
            json!({}),
        )
        .await;
    let fresh_key = r["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        let (email, _) = find(&app, &fresh_key, "late@example.com").await;
        assert_eq!(email, "late@example.com");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stops_working_at_once_though_the_replica_has_not_replayed_it() {
    // The copy never replays a revocation: it would confirm the key for ever.
    let (frozen, keys) = primary_and_frozen_copy(&["revoked here", "revoked elsewhere"]).await;
    let [(here_id, revoked_here), (_, revoked_elsewhere)] = <[_; 2]>::try_from(keys).unwrap();
    let here = TestApp::with_replica(frozen.primary.clone(), &frozen.copy, LAG).await;
    let there = TestApp::with_replica(frozen.primary.clone(), &frozen.copy, LAG).await;
    until_metric(&here, "growthgraph_replica_usable", 1).await;
    until_metric(&there, "growthgraph_replica_usable", 1).await;
    // Known to both servers after a first lookup: their queries read the copy.
    for app in [&here, &there] {
        for key in [&revoked_here, &revoked_elsewhere] {
            find(app, key, "nobody@example.com").await;
            let found = find(app, key, "nobody@example.com").await;
            assert_eq!(found, (Value::Null, true));
        }
    }

    // Revoked through one server: that server refuses the key at once, the other as soon
    // as its listener hears of it.
    let revoke = "mutation($id: ID!) { revokeApiKey(input: { id: $id }) {
        apiKey { revokedAt } userErrors { code } } }";
    let r = here
        .gql(&frozen.admin, revoke, json!({ "id": here_id }))
        .await;
    let revoked_at = &r["data"]["revokeApiKey"]["apiKey"]["revokedAt"];
    assert!(revoked_at.is_string(), "{r}");
    assert!(unauthorized(&here, &revoked_here).await);
    until("the other server refuses the key", || {
        unauthorized(&there, &revoked_here)
    })
    .await;

    // Revoked by anything else that writes the primary: both servers hear of it.
    let mut owner = db::connect_owner(&frozen.primary).await.unwrap();
    owner
        .batch_execute("UPDATE api_keys SET revoked_at = now() WHERE name = 'revoked elsewhere'")
        .await
        .unwrap();
    for app in [&here, &there] {
        until("a server refuses the key revoked elsewhere", || {
            unauthorized(app, &revoked_elsewhere)
        })
        .await;
    }
    // The key that revoked one (known since) is not forgotten: it still reads the copy.
    let found = find(&here, &frozen.admin, "nobody@example.com").await;
    assert_eq!(found, (Value::Null, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_standby_serves_queries_while_it_keeps_up_and_the_primary_when_it_cannot() {
    let root =
        std::env::temp_dir().join(format!("growthgraph-test-{}-primary", std::process::id()));
    let standby_root =
        std::env::temp_dir().join(format!("growthgraph-test-{}-standby", std::process::id()));
    let primary = tokio::task::spawn_blocking(move || {
        Cluster::start_with(&root, None, Durability::Throwaway, TEST_SETTINGS).unwrap()
    })
    .await
    .unwrap();
    growthgraph::commands::create_database_if_missing(&primary.url("postgres"), "gg")
        .await
        .unwrap();
    db::migrate(&primary.url("gg")).await.unwrap();
    let mut conn = db::connect_owner(&primary.url("gg")).await.unwrap();
    let (_, key) = tenancy::create_tenant(&mut conn, "Replicated", None)
        .await
        .unwrap();
    let (primary, standby) = tokio::task::spawn_blocking(move || {
        let standby = primary
            .start_standby(&standby_root, None, Durability::Throwaway, TEST_SETTINGS)
            .unwrap();
        (primary, standby)
    })
    .await
    .unwrap();
    let app = TestApp::with_replica(primary.url("gg"), &standby.url("gg"), LAG).await;
    until_metric(&app, "growthgraph_replica_usable", 1).await;
    // A second server that takes a lagging replica for usable for an hour (checked every
    // half hour): what it reads from a standby that stopped replaying shows where it read.
    // It starts while the standby is behind, which catches up soon after: read as soon as
    // it has (not half an hour later).
    let mut on_standby = db::connect_owner(&standby.url("gg")).await.unwrap();
    on_standby
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    upsert(&app, &key, "early@example.com").await;
    // This cluster commits asynchronously: the write is in the primary's WAL position
    // (what the watcher compares with) once the WAL writer has written it.
    let mut on_primary = db::connect_owner(&primary.url("gg")).await.unwrap();
    on_primary
        .batch_execute(
            "DO $$ DECLARE inserted pg_lsn := pg_current_wal_insert_lsn(); BEGIN
                WHILE pg_current_wal_lsn() < inserted LOOP PERFORM pg_sleep(0.01); END LOOP;
             END $$",
        )
        .await
        .unwrap();
    let hour = Duration::from_secs(3600);
    let patient = TestApp::with_replica(primary.url("gg"), &standby.url("gg"), hour).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(patient.metric("growthgraph_replica_usable").await, 0);
    on_standby
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    until_metric(&patient, "growthgraph_replica_usable", 1).await;

    // Writes go to the primary (a standby refuses them); queries read the standby, which
    // shows the write once it has replayed it.
    upsert(&app, &key, "first@example.com").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (email, on_replica) = find(&app, &key, "first@example.com").await;
        if email == "first@example.com" && on_replica {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the standby never showed the write"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The patient server's key is known after its first query (looked up on the primary).
    assert_eq!(
        find(&patient, &key, "first@example.com").await,
        (json!("first@example.com"), false)
    );

    // A standby that stops replaying falls behind: the patient server still reads it (and
    // misses the new write); the other reads the primary within its allowed lag.
    on_standby
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    upsert(&app, &key, "second@example.com").await;
    assert_eq!(
        find(&patient, &key, "second@example.com").await,
        (Value::Null, true)
    );
    until_metric(&app, "growthgraph_replica_usable", 0).await;
    let found = find(&app, &key, "second@example.com").await;
    assert_eq!(found, (json!("second@example.com"), false));
    // Caught up again: back to the standby.
    on_standby
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    until_metric(&app, "growthgraph_replica_usable", 1).await;
    let found = find(&app, &key, "second@example.com").await;
    assert_eq!(found, (json!("second@example.com"), true));

    // A standby gone: reads go to the primary.
    drop(on_standby);
    tokio::task::spawn_blocking(move || standby.stop().unwrap())
        .await
        .unwrap();
    until_metric(&app, "growthgraph_replica_usable", 0).await;
    let found = find(&app, &key, "first@example.com").await;
    assert_eq!(found, (json!("first@example.com"), false));
    tokio::task::spawn_blocking(move || primary.stop().unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_busy_with_requests_do_not_make_the_replica_look_unreachable() {
    // The database is its own "replica" (not a standby: always caught up).
    let url = fresh_database().await;
    let pool = |size| db::build_pool(&url, size, Duration::from_secs(10), Default::default());
    let (primary, replica_pool) = (pool(1), pool(1));
    let replica = Replica::watch(replica_pool.clone(), primary.clone(), LAG);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !replica.is_usable() {
        assert!(Instant::now() < deadline, "the replica never became usable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every connection of both pools taken (by slow requests, say) for longer than a
    // check may wait (2 s): the watcher asks on connections of its own.
    let held = (
        replica_pool.get().await.unwrap(),
        primary.get().await.unwrap(),
    );
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(replica.is_usable());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held);
}

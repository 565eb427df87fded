//! Row-level security on its own, pooled connections that never carry a tenant, one request one snapshot, the key lookup opening it, and commits waking the event signal.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_alone_hides_other_tenants_rows() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let mut owner = app.owner().await;
    let a_customers = count(&mut owner, &customers_of(a.id)).await;
    assert!(a_customers > 0);

    // A raw query through the server's role, with no tenant filter of its own.
    let db = TenantDb::new(app.pool.clone(), a.id);
    let b_id = b.id;
    let (all_visible, b_visible, foreign_insert) = db
        .run(|conn, _| {
            async move {
                let all = count(conn, "SELECT count(*) AS count FROM customers").await;
                let b_rows = count(conn, &customers_of(b_id)).await;
                conn.batch_execute("SAVEPOINT probe").await?;
                let insert = conn.batch_execute(&add_customer(b_id, "x@y.example")).await;
                conn.batch_execute("ROLLBACK TO SAVEPOINT probe").await?;
                Ok::<_, AppError>((all, b_rows, insert.is_err()))
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    assert_eq!(all_visible, a_customers);
    assert_eq!(b_visible, 0);
    assert!(
        foreign_insert,
        "RLS must refuse writing another tenant's row"
    );

    // No tenant set at all: nothing visible.
    let mut conn = app.pool.get().await.unwrap();
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS count FROM customers").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_never_carries_a_tenant_into_the_next_unit_of_work() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let pool = one_connection_pool(&app, Default::default());
    let seen = TenantDb::new(pool.clone(), a.id)
        .run(|conn, _| {
            async move {
                Ok::<_, AppError>(count(conn, "SELECT count(*) AS count FROM customers").await)
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    assert!(seen > 0);

    // Same (only) connection, no tenant: zero rows, no setting left behind.
    let mut conn = pool.get().await.unwrap();
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS count FROM customers").await,
        0
    );
    let setting: Setting =
        diesel::sql_query("SELECT current_setting('app.tenant_id', true) AS value")
            .get_result(&mut conn)
            .await
            .unwrap();
    assert!(
        setting.value.as_deref().unwrap_or("").is_empty(),
        "{:?}",
        setting.value
    );
}

/// Every pooled connection plans its statements once (generic plans) and never compiles
/// them (no JIT): a generic plan takes a `LIMIT $n` for a tenth of the table, and by that
/// estimate a page read with its relations (a millisecond's work) was compiled for 25 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_plans_generically_and_compiles_nothing() {
    let app = TestApp::start().await;
    let mut conn = app.pool.get().await.unwrap();
    for (name, expected) in [("plan_cache_mode", "force_generic_plan"), ("jit", "off")] {
        let setting: Setting =
            diesel::sql_query(format!("SELECT current_setting('{name}') AS value"))
                .get_result(&mut conn)
                .await
                .unwrap();
        assert_eq!(setting.value.as_deref(), Some(expected), "{name}");
    }
}

/// A request's handle: its reads share one snapshot on one connection (read-only), a
/// write ends the snapshot and later reads see it, a failed read does not poison the
/// rest, and `finish` gives the connection back without leaving the tenant set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reads_one_snapshot_on_one_connection_and_writes_end_it() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    // One connection in the pool: the request's reads and writes must all share it.
    let pool = one_connection_pool(&app, Default::default());
    let request = TenantDb::for_request(pool.clone(), a.id, RequestStart::Fresh);
    let read = || {
        request.query(|conn, _| {
            async move {
                diesel::sql_query("SELECT count(*) AS count FROM customers")
                    .get_result::<Count>(conn)
                    .await
                    .map(|c| c.count)
            }
            .scope_boxed()
        })
    };
    let before = read().await.unwrap();
    assert!(before > 0);
    assert_eq!(
        pool.status().available,
        0,
        "the request holds its connection"
    );

    // Another session commits a customer: this request's snapshot does not see it.
    app.owner()
        .await
        .batch_execute(&add_customer(a.id, "outside@example.com"))
        .await
        .unwrap();
    let concurrent: Vec<i64> = futures_util::future::join_all((0..8).map(|_| read()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(concurrent, vec![before; 8], "one snapshot for every read");

    // The snapshot is read-only: a write through the read path fails, nothing is written,
    // and the next read still works.
    let tenant = a.id;
    let refused = request
        .query(|conn, _| {
            async move {
                diesel::sql_query(add_customer(tenant, "sneaky@example.com"))
                    .execute(conn)
                    .await
            }
            .scope_boxed()
        })
        .await;
    assert!(refused.is_err(), "a read snapshot refuses writes");
    assert_eq!(
        read().await.unwrap(),
        before + 1,
        "a new snapshot after the failure"
    );

    // A write runs as its own transaction on the same connection; later reads see it.
    request
        .run(insert_customer("inside@example.com"))
        .await
        .unwrap();
    assert_eq!(read().await.unwrap(), before + 2);

    request.finish().await;
    assert_eq!(pool.status().available, 1, "finish returns the connection");
    let mut conn = pool.get().await.unwrap();
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS count FROM customers").await,
        0,
        "no tenant left on the returned connection"
    );
    let sneaky = count(
        &mut app.owner().await,
        "SELECT count(*) AS count FROM customers WHERE email = 'sneaky@example.com'",
    )
    .await;
    assert_eq!(sneaky, 0);
}

/// An HTTP request's key lookup is the first statement of its read snapshot (sent with
/// the `BEGIN`, one round trip): the connection comes back inside a read-only
/// repeatable-read transaction scoped to the key's tenant (API and widget keys alike). An
/// unknown key rolls that snapshot back: the connection returns to the pool clean instead
/// of being discarded, however many bad keys arrive. The WebSocket lookup, outside any
/// transaction, leaves no tenant behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_lookup_opens_the_requests_snapshot_for_the_keys_tenant() {
    use growthgraph::auth::{authenticate, authenticate_request, Principal};
    use growthgraph::speed::Speed;
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let pool = one_connection_pool(&app, Default::default());
    let mut owner = app.owner().await;
    owner
        .batch_execute(&add_customer(a.id, "only-a@example.com"))
        .await
        .unwrap();
    let (a_customers, b_customers) = (
        count(&mut owner, &customers_of(a.id)).await,
        count(&mut owner, &customers_of(b.id)).await,
    );
    assert_ne!(a_customers, b_customers, "the two tenants are told apart");
    let widget = widget_key(&mut owner, b.id).await;

    for (key, tenant, customers) in [
        (format!("Bearer {}", a.admin_key), a.id, a_customers),
        (format!("Bearer {}", widget), b.id, b_customers),
    ] {
        let caller = authenticate_request(&pool, None, Some(&key), Speed::default())
            .await
            .unwrap();
        let Proof::LookedUp(mut conn) = caller.proof else {
            panic!("looked up, nothing to confirm");
        };
        let principal = caller.principal;
        assert_eq!(principal.tenant_id(), tenant);
        let state = snapshot_state(&mut conn).await;
        assert_eq!(state.tenant, Some(tenant.to_string()));
        assert_eq!(state.isolation, "repeatable read");
        assert_eq!(state.read_only, "on");
        assert_eq!(
            state.customers, customers,
            "row-level security sees the key's tenant"
        );
        // The request's handle reads and writes on it, and finishes it.
        let request = TenantDb::for_request(pool.clone(), tenant, RequestStart::LookedUp(*conn));
        request
            .run(insert_customer("after-lookup@example.com"))
            .await
            .unwrap();
        request.finish().await;
        assert_eq!(
            count(&mut owner, &customers_of(tenant)).await,
            customers + 1,
            "the write after the snapshot committed"
        );
    }
    assert!(matches!(
        authenticate_request(
            &pool,
            None,
            Some(&format!("Bearer {}", widget)),
            Speed::default()
        )
        .await
        .unwrap()
        .principal,
        Principal::Widget { .. }
    ));

    // (The pool checks a connection when it is next checked out.)
    let pid = backend_pid(&mut pool.get().await.unwrap()).await;
    for bad in [
        "Bearer gg_admin_unknown",
        "Bearer wgt_unknown",
        "Bearer nothing",
    ] {
        for _ in 0..3 {
            let refused = authenticate_request(&pool, None, Some(bad), Speed::default()).await;
            assert!(matches!(refused, Err(AppError::Unauthenticated(_))));
        }
    }
    let mut conn = pool.get().await.unwrap();
    assert_eq!(backend_pid(&mut conn).await, pid, "the connection was kept");
    let state = snapshot_state(&mut conn).await;
    assert_eq!(state.read_only, "off", "outside any transaction");
    assert!(state.tenant.as_deref().unwrap_or("").is_empty());
    assert_eq!(state.customers, 0);
    drop(conn);

    let principal = authenticate(&pool, Some(&format!("Bearer {}", a.admin_key)))
        .await
        .unwrap();
    assert_eq!(principal.tenant_id(), a.id);
    let mut conn = pool.get().await.unwrap();
    let state = snapshot_state(&mut conn).await;
    assert!(state.tenant.as_deref().unwrap_or("").is_empty());
    assert_eq!(state.customers, 0);
}

/// A committed write wakes the commit signal (the event sequencer), in both modes; a read
/// and a failed write do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_writes_and_only_they_wake_the_commit_signal() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let tenant = a.id;
    let woken = |signal: &std::sync::Arc<tokio::sync::Notify>| {
        let signal = signal.clone();
        async move {
            tokio::time::timeout(Duration::from_millis(200), signal.notified())
                .await
                .is_ok()
        }
    };
    for per_request in [false, true] {
        let signal = std::sync::Arc::new(tokio::sync::Notify::new());
        let db = if per_request {
            TenantDb::for_request(app.pool.clone(), tenant, RequestStart::Fresh)
        } else {
            TenantDb::new(app.pool.clone(), tenant)
        }
        .signalling_commits(signal.clone());

        let read = db
            .query(|conn, _| {
                async move {
                    diesel::sql_query("SELECT count(*) AS count FROM customers")
                        .get_result::<Count>(conn)
                        .await
                }
                .scope_boxed()
            })
            .await;
        assert!(read.is_ok());
        assert!(!woken(&signal).await, "a read is not a commit");

        let failed = db
            .run(|conn, _| {
                async move {
                    conn.batch_execute("INSERT INTO customers (tenant_id) VALUES (NULL)")
                        .await
                        .map_err(AppError::from)
                }
                .scope_boxed()
            })
            .await;
        assert!(failed.is_err());
        assert!(!woken(&signal).await, "a rolled-back write is not a commit");

        db.run(|conn, _| {
            async move {
                conn.batch_execute(&add_customer(
                    tenant,
                    &format!("signal{per_request}@example.com"),
                ))
                .await
                .map_err(AppError::from)
            }
            .scope_boxed()
        })
        .await
        .unwrap();
        assert!(woken(&signal).await, "a committed write wakes the signal");
        db.finish().await;
    }
}

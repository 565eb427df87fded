//! Known keys confirmed by the request's first statement, read groups within their slots and snapshot, revocation seen at once.

use super::*;
use growthgraph::speed::Speed;

/// The handle of a request made with a key `known` remembers: not looked up, to be
/// confirmed with its first statement.
async fn known_request(
    pool: &db::PgPool,
    known: &growthgraph::auth::KnownKeys,
    header: &str,
) -> TenantDb {
    let caller =
        growthgraph::auth::authenticate_request(pool, Some(known), Some(header), Speed::default())
            .await
            .unwrap();
    let Proof::Known(confirmation) = caller.proof else {
        panic!("a known key is confirmed, not looked up");
    };
    TenantDb::for_request(
        pool.clone(),
        caller.principal.tenant_id(),
        RequestStart::Unconfirmed {
            conn: None,
            statement: confirmation,
        },
    )
}

/// A key the server has looked up before is not looked up again: the request starts from
/// what the database said, and the database confirms it with the request's first
/// statement, in the same snapshot, scoped to the key's tenant. A key revoked since is
/// refused there: that statement fails, nothing is written, nothing more runs for the
/// request, and the connection goes back to the pool clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_key_is_confirmed_by_the_requests_first_statement() {
    use growthgraph::auth::{authenticate_request, KnownKeys};
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let statements = Arc::new(db::StatementCounter::default());
    let pool = one_connection_pool(&app, statements.clone());
    let mut owner = app.owner().await;
    owner
        .batch_execute(&add_customer(a.id, "known-a@example.com"))
        .await
        .unwrap();
    let customers_of_a = customers_of(a.id);
    let a_customers = count(&mut owner, &customers_of_a).await;
    let known = KnownKeys::default();
    let header = format!("Bearer {}", a.admin_key);
    // First use: looked up, and remembered.
    first_use(&app, &pool, &known, &a).await;

    // Then confirmed with the first statement: same snapshot, the key's tenant.
    let sent = || {
        statements.data_statements()
            + std::sync::atomic::AtomicU64::load(
                &statements.control,
                std::sync::atomic::Ordering::Relaxed,
            )
    };
    let before = sent();
    let db = known_request(&pool, &known, &header).await;
    assert_eq!(sent(), before, "nothing sent yet");
    assert_eq!(db.tenant().id(), a.id);
    let state = db.query(read_snapshot).await.unwrap();
    assert_eq!(sent(), before + 3, "BEGIN, the confirmation and the read");
    assert_eq!(state.tenant, Some(a.id.to_string()));
    assert_eq!(
        (state.isolation.as_str(), state.read_only.as_str()),
        ("repeatable read", "on")
    );
    assert_eq!(
        state.customers, a_customers,
        "row-level security sees the key's tenant"
    );
    assert!(db.confirmed().await);
    db.run(insert_customer("known-write@example.com"))
        .await
        .unwrap();
    db.finish().await;
    assert_eq!(count(&mut owner, &customers_of_a).await, a_customers + 1);

    // A write first: the confirmation runs (and must succeed) before it.
    let db = known_request(&pool, &known, &header).await;
    db.run(insert_customer("known-write-first@example.com"))
        .await
        .unwrap();
    assert!(db.confirmed().await);
    db.finish().await;
    assert_eq!(count(&mut owner, &customers_of_a).await, a_customers + 2);

    // The confirmation checks the key's hash, id, tenant and role, not only its hash.
    let key_id: Uuid = {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: Uuid,
        }
        diesel::sql_query("SELECT id FROM api_keys WHERE key_hash = sha256(convert_to($1, 'UTF8'))")
            .bind::<Text, _>(&a.admin_key)
            .get_result::<Id>(&mut owner)
            .await
            .unwrap()
            .id
    };
    let confirm = |key_id: Uuid, tenant: Uuid, role: &str| {
        format!(
            "SET ROLE growthgraph_app; BEGIN; SELECT confirm_api_key(sha256(convert_to('{}', 'UTF8')), '{key_id}', '{tenant}', '{role}'); COMMIT; RESET ROLE",
            a.admin_key
        )
    };
    owner
        .batch_execute(&confirm(key_id, a.id, "admin"))
        .await
        .unwrap();
    for (id, tenant, role) in [
        (key_id, b.id, "admin"),
        (key_id, a.id, "partner"),
        (Uuid::new_v4(), a.id, "admin"),
    ] {
        assert!(owner
            .batch_execute(&confirm(id, tenant, role))
            .await
            .is_err());
        owner.batch_execute("ROLLBACK; RESET ROLE").await.unwrap();
    }

    // Revoked since it was remembered: refused by the first statement, or before a write,
    // or when the handler asks; nothing is written, and nothing runs after.
    owner
        .batch_execute(&format!(
            "UPDATE api_keys SET revoked_at = now() WHERE id = '{key_id}'"
        ))
        .await
        .unwrap();
    for first_work in ["read", "write", "none"] {
        let db = known_request(&pool, &known, &header).await;
        match first_work {
            "read" => assert!(db.query(read_snapshot).await.is_err()),
            "write" => assert!(matches!(
                db.run(insert_customer("revoked-write@example.com")).await,
                Err(AppError::Unauthenticated(_))
            )),
            _ => {}
        }
        assert!(!db.confirmed().await, "{first_work}");
        assert!(
            db.query(read_snapshot).await.is_err(),
            "nothing runs after a refusal"
        );
        assert!(db
            .run(insert_customer("revoked-later@example.com"))
            .await
            .is_err());
        db.finish().await;
    }
    assert_eq!(
        count(&mut owner, &customers_of_a).await,
        a_customers + 2,
        "nothing written"
    );

    // Forgotten (as the handler does on a refusal), the key is looked up and refused.
    known.forget(Some(&header));
    assert!(matches!(
        authenticate_request(&pool, Some(&known), Some(&header), Speed::default()).await,
        Err(AppError::Unauthenticated(_))
    ));
    let mut conn = pool.get().await.unwrap();
    let state = snapshot_state(&mut conn).await;
    assert_eq!(state.read_only, "off", "outside any transaction");
    assert!(state.tenant.as_deref().unwrap_or("").is_empty());
    assert_eq!(state.customers, 0);
}

/// `tenant`'s admin key used once with `known`: looked up (and remembered), the key's
/// use recorded (off the request path, on a connection of `pool`), and every connection
/// of `pool` back, so a test counts only its own statements and connections.
async fn first_use(
    app: &TestApp,
    pool: &db::PgPool,
    known: &growthgraph::auth::KnownKeys,
    tenant: &crate::common::TestTenant,
) {
    let header = format!("Bearer {}", tenant.admin_key);
    let first =
        growthgraph::auth::authenticate_request(pool, Some(known), Some(&header), Speed::default())
            .await
            .unwrap();
    let Proof::LookedUp(conn) = first.proof else {
        panic!("a key's first use is looked up");
    };
    TenantDb::for_request(pool.clone(), tenant.id, RequestStart::LookedUp(*conn))
        .finish()
        .await;
    let used = format!(
        "SELECT count(*) AS count FROM api_keys WHERE tenant_id = '{}' AND last_used_at IS NOT NULL",
        tenant.id
    );
    let mut owner = app.owner().await;
    while count(&mut owner, &used).await == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..500 {
        let status = pool.status();
        if status.size == status.available {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The confirmation statement of `tenant`'s admin key once `known` knows it (after its
/// [`first_use`]).
async fn known_caller(
    app: &TestApp,
    pool: &db::PgPool,
    known: &growthgraph::auth::KnownKeys,
    tenant: &crate::common::TestTenant,
) -> String {
    first_use(app, pool, known, tenant).await;
    let header = format!("Bearer {}", tenant.admin_key);
    match growthgraph::auth::authenticate_request(
        pool,
        Some(known),
        Some(&header),
        Speed::default(),
    )
    .await
    .unwrap()
    .proof
    {
        Proof::Known(statement) => statement,
        Proof::LookedUp(_) => panic!("then known"),
    }
}

/// One caller's read groups hold at most their connection slots at once: a second group
/// waits for the first to finish, though the pool has a connection free; another
/// caller's groups have slots of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_read_groups_hold_at_most_their_connection_slots() {
    use growthgraph::auth::KnownKeys;
    use growthgraph::db::group::ReadGroups;
    let app = TestApp::start().await;
    let (a, b) = (app.tenant("Winery A").await, app.tenant("Winery B").await);
    let pool = db::build_pool(
        &app.database_url,
        3,
        Duration::from_secs(5),
        Default::default(),
    );
    let known = KnownKeys::default();
    let (a_caller, b_caller) = (
        known_caller(&app, &pool, &known, &a).await,
        known_caller(&app, &pool, &known, &b).await,
    );
    let groups = ReadGroups::new(16, 1);
    let first = TenantDb::for_request(
        pool.clone(),
        a.id,
        RequestStart::Grouped {
            groups: &groups,
            group: format!("{}/admin", a.id),
            statement: a_caller.clone(),
        },
    );
    first.query(read_snapshot).await.unwrap();
    let second = TenantDb::for_request(
        pool.clone(),
        a.id,
        RequestStart::Grouped {
            groups: &groups,
            group: format!("{}/admin", a.id),
            statement: a_caller.clone(),
        },
    );
    assert_eq!(groups.joins(), 0, "the first group's snapshot began");
    let waiting = tokio::spawn({
        let second = second.clone();
        async move { second.query(read_snapshot).await.map(|s| s.customers) }
    });
    let other = TenantDb::for_request(
        pool.clone(),
        b.id,
        RequestStart::Grouped {
            groups: &groups,
            group: format!("{}/admin", b.id),
            statement: b_caller,
        },
    );
    let state = other.query(read_snapshot).await.unwrap();
    assert_eq!(
        state.tenant,
        Some(b.id.to_string()),
        "b's slots are its own"
    );
    other.finish().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a's second group waits for a's slot"
    );
    first.finish().await;
    let customers = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the slot is free once the first group finished")
        .unwrap()
        .unwrap();
    assert_eq!(
        customers,
        count(&mut app.owner().await, &customers_of(a.id)).await
    );
    second.finish().await;
    let status = pool.status();
    assert_eq!(status.size - status.available, 0, "every connection back");
}

/// A read group (`db::group`): handles of one known caller opened before the group's
/// snapshot began share that snapshot and its one connection; a handle opened after it
/// began starts another group, whose snapshot sees what was committed since; nothing in a
/// group writes; the connection goes back to the pool with the last member. A key revoked
/// since is refused for every member, and the connection goes back clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_group_shares_one_snapshot_and_takes_no_member_after_it_began() {
    use growthgraph::auth::KnownKeys;
    use growthgraph::db::group::ReadGroups;
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let pool = db::build_pool(
        &app.database_url,
        2,
        Duration::from_secs(5),
        Default::default(),
    );
    let known = KnownKeys::default();
    let caller = known_caller(&app, &pool, &known, &a).await;
    let groups = ReadGroups::new(16, 2);
    let member = || {
        TenantDb::for_request(
            pool.clone(),
            a.id,
            RequestStart::Grouped {
                groups: &groups,
                group: format!("{}/admin", a.id),
                statement: caller.clone(),
            },
        )
    };
    let in_use = || {
        let status = pool.status();
        status.size - status.available
    };

    let (one, two) = (member(), member());
    assert_eq!(groups.joins(), 1, "the second joined the first's group");
    let mut owner = app.owner().await;
    let before = count(&mut owner, &customers_of(a.id)).await;
    let state = one.query(read_snapshot).await.unwrap();
    assert_eq!(state.tenant, Some(a.id.to_string()));
    assert_eq!(
        (state.isolation.as_str(), state.read_only.as_str()),
        ("repeatable read", "on")
    );
    assert_eq!(state.customers, before);
    owner
        .batch_execute(&add_customer(a.id, "after-the-snapshot@example.com"))
        .await
        .unwrap();
    assert_eq!(
        two.query(read_snapshot).await.unwrap().customers,
        before,
        "the second member reads the group's snapshot"
    );
    assert_eq!(in_use(), 1, "one connection for the group");

    let three = member();
    assert_eq!(
        groups.joins(),
        1,
        "no member once the snapshot may have begun"
    );
    assert_eq!(
        three.query(read_snapshot).await.unwrap().customers,
        before + 1,
        "a later group sees what was committed since"
    );
    assert!(matches!(
        two.run(insert_customer("grouped-write@example.com")).await,
        Err(AppError::Internal { .. })
    ));
    assert!(one.confirmed().await && two.confirmed().await && three.confirmed().await);
    one.finish().await;
    assert_eq!(
        in_use(),
        2,
        "the group's connection is held for its last member"
    );
    two.finish().await;
    assert_eq!(in_use(), 1);
    three.finish().await;
    assert_eq!(in_use(), 0);
    assert_eq!(
        count(&mut owner, &customers_of(a.id)).await,
        before + 1,
        "nothing written by the group"
    );

    // Revoked since: every member is refused, nothing runs, the connection comes back
    // clean.
    owner
        .batch_execute(&format!(
            "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = '{}'",
            a.id
        ))
        .await
        .unwrap();
    let (one, two) = (member(), member());
    assert_eq!(groups.joins(), 2);
    assert!(one.query(read_snapshot).await.is_err());
    assert!(two.query(read_snapshot).await.is_err());
    assert!(!one.confirmed().await && !two.confirmed().await);
    one.finish().await;
    two.finish().await;
    assert_eq!(in_use(), 0);
    let mut conn = pool.get().await.unwrap();
    let state = snapshot_state(&mut conn).await;
    assert_eq!(state.read_only, "off", "outside any transaction");
    assert!(state.tenant.as_deref().unwrap_or("").is_empty());
}

/// Over HTTP, a key revoked after the server came to know it gets 401 on its next request,
/// whatever that request is: a read, a write (nothing written), an operation that reads
/// nothing, a malformed body, a GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_key_revoked_since_gets_401_whatever_the_request() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let mut owner = app.owner().await;
    let customers = "SELECT count(*) AS count FROM customers";
    let before = count(&mut owner, customers).await;
    let write = json!({
        "query": "mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) { customer { id } userErrors { code } } }",
        "variables": { "input": { "email": "after-revocation@example.com" } },
    });
    for case in ["read", "write", "nothing", "malformed", "get"] {
        let key = app.key(&a, Role::Partner).await;
        let (status, body) = app
            .post(
                Some(&key),
                json!({ "query": "{ viewer { tenant { id } } }" }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        owner
            .batch_execute(&format!(
                "UPDATE api_keys SET revoked_at = now() WHERE key_hash = sha256(convert_to('{key}', 'UTF8'))"
            ))
            .await
            .unwrap();
        let (status, body) = match case {
            "read" => {
                app.post(
                    Some(&key),
                    json!({ "query": "{ viewer { tenant { id } } }" }),
                )
                .await
            }
            "write" => app.post(Some(&key), write.clone()).await,
            "nothing" => {
                app.post(Some(&key), json!({ "query": "{ __typename }" }))
                    .await
            }
            "malformed" => app.post(Some(&key), json!({ "not": "graphql" })).await,
            _ => {
                let response = app
                    .client
                    .get(format!("{}/graphql?query=%7B__typename%7D", app.base))
                    .header("Authorization", format!("Bearer {key}"))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (status, response.json().await.unwrap())
            }
        };
        assert_eq!(
            (status, error_code(&body)),
            (401, Some("UNAUTHENTICATED")),
            "{case}: {body}"
        );
        assert!(body.get("data").is_none(), "{case}: {body}");
    }
    assert_eq!(
        count(&mut owner, customers).await,
        before,
        "nothing written"
    );
    // A known key that is not revoked keeps working, and writes.
    let key = app.key(&a, Role::Partner).await;
    for _ in 0..2 {
        let (status, body) = app.post(Some(&key), write.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body["data"]["upsertCustomer"]["customer"]["id"].is_string(),
            "{body}"
        );
    }
    assert_eq!(count(&mut owner, customers).await, before + 1);
}

//! Enrollment changes synced to Shopify: the customer made known once, the stage's tag
//! added and removed, rate limits waited out, refusals kept for the admin.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_crm_seals_credentials_shows_the_hook_token_once_and_refuses_bad_input() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Shop Winery").await;
    let analyst = app.key(&t, Role::Analyst).await;

    // Refused, and nothing written.
    let refusals = [
        (
            json!({ "provider": "SHOPIFY", "shop": "evil.example.com", "credentials": { "accessToken": TOKEN } }),
            "shop",
        ),
        (
            json!({ "provider": "SHOPIFY", "shop": "-x.myshopify.com", "credentials": { "accessToken": TOKEN } }),
            "shop",
        ),
        (
            json!({ "provider": "SHOPIFY", "shop": SHOP, "credentials": { "webhookSecret": "s" } }),
            "credentials",
        ),
        (
            json!({ "provider": "SHOPIFY", "shop": SHOP, "credentials": { "accessToken": "a\nb" } }),
            "credentials",
        ),
        (
            json!({ "provider": "SHOPIFY", "shop": SHOP }),
            "credentials",
        ),
        (
            json!({ "provider": "COMMERCE7", "shop": "acme", "credentials": { "appId": "a", "secretKey": "b" } }),
            "credentials",
        ),
    ];
    for (input, field) in refusals {
        let r = configure(&app, &t.admin_key, input.clone()).await;
        let errors = &r["data"]["configureCrm"]["userErrors"];
        assert_eq!(errors[0]["code"], "INVALID", "{input} → {r}");
        assert_eq!(errors[0]["field"], json!(["input", field]), "{input} → {r}");
    }
    let r = configure(&app, &analyst, shopify_input()).await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM crm_connections").await,
        0
    );
    // A server without a secret key cannot keep credentials.
    let keyless = TestApp::start().await;
    let k = keyless.bare_tenant("Keyless").await;
    let r = configure(&keyless, &k.admin_key, shopify_input()).await;
    assert_eq!(user_error_code(&r, "configureCrm"), "INVALID", "{r}");

    // Connected: the token once, the credentials sealed and never returned.
    let r = configure(
        &app,
        &t.admin_key,
        json!({ "provider": "SHOPIFY", "shop": "Acme-Wines.myshopify.com ",
        "credentials": { "accessToken": TOKEN, "webhookSecret": WEBHOOK_SECRET } }),
    )
    .await;
    let payload = &r["data"]["configureCrm"];
    assert_eq!(payload["userErrors"], json!([]), "{r}");
    assert_eq!(
        payload["crmConnection"],
        json!({ "provider": "SHOPIFY", "shop": SHOP, "enabled": true })
    );
    let token = payload["hookToken"].as_str().unwrap();
    assert!(token.starts_with("ghk_") && token.len() == 52, "{token}");
    let again = configure(
        &app,
        &t.admin_key,
        json!({ "provider": "SHOPIFY", "shop": SHOP, "enabled": false }),
    )
    .await;
    assert_eq!(
        again["data"]["configureCrm"]["hookToken"],
        Value::Null,
        "{again}"
    );
    assert_eq!(
        again["data"]["configureCrm"]["crmConnection"]["enabled"],
        false
    );
    let read = app
        .gql(
            &analyst,
            "{ crmConnection { provider shop enabled } }",
            json!({}),
        )
        .await;
    assert_eq!(
        read["data"]["crmConnection"],
        json!({ "provider": "SHOPIFY", "shop": SHOP, "enabled": false }),
        "{read}"
    );
    let sealed = count(
        &app,
        &format!("SELECT count(*) AS n FROM crm_connections WHERE position(convert_to('{TOKEN}', 'UTF8') IN credentials_sealed) = 0 AND tenant_id = '{}'", t.id),
    )
    .await;
    assert_eq!(sealed, 1, "the access token is not stored in the clear");
    // Another tenant sees no connection.
    let other = app.bare_tenant("Other Winery").await;
    let read = app
        .gql(&other.admin_key, "{ crmConnection { shop } }", json!({}))
        .await;
    assert_eq!(read["data"]["crmConnection"], Value::Null, "{read}");

    // Racing first connections make one row, and one token each shown.
    let racing = app.bare_tenant("Racing Winery").await;
    let calls = (0..6).map(|_| configure(&app, &racing.admin_key, shopify_input()));
    let answers = futures_util::future::join_all(calls).await;
    let tokens = answers
        .iter()
        .filter(|r| r["data"]["configureCrm"]["hookToken"].is_string())
        .count();
    assert_eq!(tokens, 1, "{answers:?}");
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT count(*) AS n FROM crm_connections WHERE tenant_id = '{}'",
                racing.id
            )
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollments_reach_shopify_as_customers_and_stage_tags() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.tenant("Tag Winery").await;
    without_demo_enrollments(&app, &t).await;
    let (url, store) = shopify_stand_in().await;
    let crm = connectors(&app, &url);
    configure(&app, &t.admin_key, shopify_input()).await;
    // Shopify already knows one of the two customers.
    store.lock().unwrap().customers.push(ShopifyCustomer {
        id: "gid://shopify/Customer/77".into(),
        email: "known@tag.example".into(),
        first_name: None,
        last_name: None,
        tags: ["vip".to_owned()].into(),
    });
    let known = enroll_new(&app, &t, "known@tag.example", "Bronze").await;
    let fresh = enroll_new(&app, &t, "fresh@tag.example", "Bronze").await;
    assert_eq!(run(&app, &t, &crm).await, 2);
    {
        let s = store.lock().unwrap();
        assert_eq!(s.malformed, Vec::<String>::new());
        assert_eq!(s.count("CreateCustomer"), 1, "{:?}", s.operations);
        assert_eq!(s.count("UpdateCustomer"), 1, "{:?}", s.operations);
        let k = s.by_email("known@tag.example").unwrap();
        assert_eq!(
            k.tags,
            ["D-1".to_owned(), "vip".to_owned()].into(),
            "the merchant's tags stay"
        );
        assert_eq!(k.first_name.as_deref(), Some("Test"));
        let f = s.by_email("fresh@tag.example").unwrap();
        assert_eq!(f.tags, ["D-1".to_owned()].into());
    }
    for enrollment in [&known, &fresh] {
        assert_eq!(
            sync_state(&app, &t, enrollment).await,
            json!({ "syncStatus": "SYNCED", "syncError": null })
        );
    }
    assert_eq!(
        count(&app, &format!("SELECT count(*) AS n FROM customers WHERE tenant_id = '{}' AND crm_customer_id LIKE 'gid://shopify/Customer/%'", t.id)).await,
        2
    );

    // An upgrade moves the tag: Silver's on, Bronze's off; the known id saves the lookup.
    let stages = stages(&app, &t).await;
    let order = app.gql(&t.admin_key, "mutation($c: ID!) { recordOrder(input: { customerId: $c, orderTotal: \"400.00\" }) { order { id } } }",
        json!({ "c": app.gql(&t.admin_key, "query($e: ID!) { enrollment(id: $e) { customerId } }", json!({ "e": fresh })).await["data"]["enrollment"]["customerId"] })).await;
    let order = order["data"]["recordOrder"]["order"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let up = app.gql(&t.admin_key, "mutation($e: ID!, $s: ID!, $o: ID) { upgradeEnrollment(input: { enrollmentId: $e, stageId: $s, qualifyingOrderId: $o }) { enrollment { id } userErrors { code } } }",
        json!({ "e": fresh, "s": stage(&stages, "Silver"), "o": order })).await;
    let upgraded = up["data"]["upgradeEnrollment"]["enrollment"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{up}"))
        .to_owned();
    let before = store.lock().unwrap().operations.len();
    run(&app, &t, &crm).await;
    {
        let s = store.lock().unwrap();
        assert_eq!(
            s.by_email("fresh@tag.example").unwrap().tags,
            ["D-2".to_owned()].into(),
            "{:?}",
            s.operations
        );
        assert!(
            s.operations[before..]
                .iter()
                .all(|o| o == "AddTags" || o == "RemoveTags"),
            "{:?}",
            &s.operations[before..]
        );
    }
    assert_eq!(
        sync_state(&app, &t, &upgraded).await["syncStatus"],
        "SYNCED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_wait_without_spending_attempts_and_refusals_fail_at_once() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.tenant("Busy Winery").await;
    without_demo_enrollments(&app, &t).await;
    let (url, store) = shopify_stand_in().await;
    let crm = connectors(&app, &url);
    configure(&app, &t.admin_key, shopify_input()).await;
    let first = enroll_new(&app, &t, "one@busy.example", "Bronze").await;
    let second = enroll_new(&app, &t, "two@busy.example", "Bronze").await;

    // HTTP 429 with a Retry-After longer than a batch waits (2 s): both jobs go back to
    // the queue for 4 s, attempts unspent.
    store.lock().unwrap().scripted.push((
        429,
        vec![("retry-after", "4".into())],
        json!({ "errors": "Exceeded 2 calls per second for api client." }),
    ));
    assert_eq!(run(&app, &t, &crm).await, 0);
    let jobs = sync_jobs(&app, &t).await;
    assert_eq!(jobs.len(), 2);
    for job in &jobs {
        assert_eq!(
            (job.status.as_str(), job.attempts),
            ("pending", 0),
            "{job:?}"
        );
        assert!((3.0..=4.1).contains(&job.delay_seconds), "{job:?}");
        assert_eq!(job.error.as_deref(), Some("rate limited by the CRM"));
    }
    assert_eq!(sync_state(&app, &t, &first).await["syncStatus"], "PENDING");

    // Shopify's cost throttle: the bucket short by 150 points at 50 a second waits 3 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    make_due(&app, &t).await;
    store.lock().unwrap().scripted.push((
        200,
        vec![],
        json!({ "errors": [{ "message": "Throttled", "extensions": { "code": "THROTTLED" } }],
            "extensions": { "cost": { "requestedQueryCost": 152, "actualQueryCost": null,
                "throttleStatus": { "maximumAvailable": 1000.0, "currentlyAvailable": 2, "restoreRate": 50.0 } } } }),
    ));
    assert_eq!(run(&app, &t, &crm).await, 0);
    for job in sync_jobs(&app, &t).await {
        assert_eq!(job.attempts, 0, "{job:?}");
        assert!((2.0..=3.5).contains(&job.delay_seconds), "{job:?}");
    }
    // Then both go through, the bucket's wait kept by the client.
    make_due(&app, &t).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(run(&app, &t, &crm).await, 2);
    for enrollment in [&first, &second] {
        assert_eq!(
            sync_state(&app, &t, enrollment).await["syncStatus"],
            "SYNCED"
        );
    }

    // A short wait (1 s) is waited out within the batch: synced, one attempt.
    let short = enroll_new(&app, &t, "short@busy.example", "Bronze").await;
    store.lock().unwrap().scripted.push((
        429,
        vec![("retry-after", "1".into())],
        json!({ "errors": "Exceeded 2 calls per second for api client." }),
    ));
    let started = std::time::Instant::now();
    assert_eq!(run(&app, &t, &crm).await, 1);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(sync_state(&app, &t, &short).await["syncStatus"], "SYNCED");
    let job = sync_jobs(&app, &t).await.pop().unwrap();
    assert_eq!(
        (job.status.as_str(), job.attempts),
        ("completed", 1),
        "{job:?}"
    );

    // A 5xx is retried with backoff.
    let third = enroll_new(&app, &t, "three@busy.example", "Bronze").await;
    store
        .lock()
        .unwrap()
        .scripted
        .push((503, vec![], json!({ "errors": "unavailable" })));
    assert_eq!(run(&app, &t, &crm).await, 1);
    let job = sync_jobs(&app, &t).await.pop().unwrap();
    assert_eq!(
        (job.status.as_str(), job.attempts),
        ("pending", 1),
        "{job:?}"
    );
    assert!((1.0..=2.5).contains(&job.delay_seconds), "{job:?}");

    // A revoked token fails at once with Shopify's message (never the token itself).
    make_due(&app, &t).await;
    let wrong = json!({ "provider": "SHOPIFY", "shop": SHOP, "credentials": { "accessToken": "shpat_revoked" } });
    configure(&app, &t.admin_key, wrong).await;
    assert_eq!(run(&app, &t, &crm).await, 1);
    let job = sync_jobs(&app, &t).await.pop().unwrap();
    assert_eq!(job.status, "failed", "{job:?}");
    let state = sync_state(&app, &t, &third).await;
    assert_eq!(state["syncStatus"], "FAILED");
    let error = state["syncError"].as_str().unwrap();
    assert!(
        error.contains("401") && error.contains("Invalid API key"),
        "{error}"
    );
    assert!(!error.contains("shpat_"), "{error}");

    // Validation refusals (userErrors) fail at once too, with Shopify's words.
    configure(&app, &t.admin_key, shopify_input()).await;
    let fourth = enroll_new(&app, &t, "four@busy.example", "Bronze").await;
    store.lock().unwrap().scripted.push((
        200,
        vec![],
        json!({ "data": { "customers": { "nodes": [] } }, "extensions": cost() }),
    ));
    store.lock().unwrap().scripted.push((
        200,
        vec![],
        json!({ "data": { "customerCreate": { "customer": null, "userErrors": [{ "field": ["email"], "message": "Email is invalid" }] } }, "extensions": cost() }),
    ));
    run(&app, &t, &crm).await;
    let state = sync_state(&app, &t, &fourth).await;
    assert_eq!(state["syncStatus"], "FAILED", "{state}");
    assert!(
        state["syncError"]
            .as_str()
            .unwrap()
            .contains("Email is invalid"),
        "{state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_configured_syncs_go_once_a_crm_is_configured_and_racing_runners_call_once_each() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.tenant("Late Winery").await;
    without_demo_enrollments(&app, &t).await;
    let (url, store) = shopify_stand_in().await;
    let crm = connectors(&app, &url);
    let mut enrollments = Vec::new();
    for i in 0..12 {
        enrollments.push(enroll_new(&app, &t, &format!("m{i}@late.example"), "Bronze").await);
    }
    // No CRM yet: honest, and nothing called.
    assert_eq!(run(&app, &t, &crm).await, 12);
    for e in &enrollments {
        assert_eq!(
            sync_state(&app, &t, e).await["syncStatus"],
            "NOT_CONFIGURED"
        );
    }
    assert_eq!(store.lock().unwrap().calls, 0);

    // Configured: every waiting enrollment is queued again, and two runners racing over
    // them (with a 429 on every seventh call) make each customer and tag once.
    store.lock().unwrap().throttle_every = Some(7);
    configure(&app, &t.admin_key, shopify_input()).await;
    for e in &enrollments {
        assert_eq!(sync_state(&app, &t, e).await["syncStatus"], "PENDING");
    }
    for _ in 0..20 {
        let db = TenantDb::new(app.pool.clone(), t.id);
        let db2 = TenantDb::new(app.pool.clone(), t.id);
        let (a, b) = tokio::join!(
            jobs::run_due_crm_jobs(&db, &crm, 3),
            jobs::run_due_crm_jobs(&db2, &crm, 3)
        );
        a.unwrap();
        b.unwrap();
        make_due(&app, &t).await;
        if sync_jobs(&app, &t)
            .await
            .iter()
            .all(|j| j.status != "pending")
        {
            break;
        }
    }
    {
        let s = store.lock().unwrap();
        assert_eq!(s.customers.len(), 12, "{:?}", s.operations);
        assert_eq!(s.count("CreateCustomer"), 12, "{:?}", s.operations);
        assert_eq!(s.count("AddTags"), 12, "{:?}", s.operations);
        assert!(s
            .customers
            .iter()
            .all(|c| c.tags == ["D-1".to_owned()].into()));
    }
    for e in &enrollments {
        assert_eq!(sync_state(&app, &t, e).await["syncStatus"], "SYNCED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_drains_the_due_syncs_in_batches_and_stops_when_shopify_asks_to_wait() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.tenant("Bulk Winery").await;
    without_demo_enrollments(&app, &t).await;
    let (url, store) = shopify_stand_in().await;
    let crm = connectors(&app, &url);
    configure(&app, &t.admin_key, shopify_input()).await;
    let mut owner = app.owner().await;
    owner
        .batch_execute(&format!(
            "WITH c AS (
               INSERT INTO customers (tenant_id, email, name)
               SELECT '{0}', 'bulk' || g || '@bulk.example', 'Bulk ' || g FROM generate_series(1, 250) g
               RETURNING id),
             e AS (
               INSERT INTO club_enrollments (tenant_id, customer_id, program_id, stage_id, status, enrolled_at, expires_at, sync_status)
               SELECT '{0}', c.id, s.program_id, s.id, 'active', now(), now() + interval '3 months', 'pending'
               FROM c, club_stages s WHERE s.tenant_id = '{0}' AND s.name = 'Bronze'
               RETURNING id, customer_id, stage_id)
             INSERT INTO queue_jobs (tenant_id, job_type, payload)
             SELECT '{0}', 'crm_sync', jsonb_build_object('enrollmentId', e.id, 'customerId', e.customer_id,
                    'stageId', e.stage_id, 'crmDiscountId', 'D-1', 'action', 'add')
             FROM e",
            t.id
        ))
        .await
        .unwrap();
    let db = TenantDb::new(app.pool.clone(), t.id);
    // One tick takes them all, a hundred at a time.
    let ran = jobs::drain_crm_jobs(&db, &crm, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(ran, 250);
    {
        let s = store.lock().unwrap();
        assert_eq!((s.count("CreateCustomer"), s.count("AddTags")), (250, 250));
    }
    // Short waits (a 429 on every tenth call, `Retry-After: 0`) are waited out within the
    // tick: every sync again, none lost or doubled.
    owner
        .batch_execute(&format!(
            "UPDATE queue_jobs SET status = 'pending', run_at = now(), attempts = 0
             WHERE tenant_id = '{}' AND job_type = 'crm_sync'",
            t.id
        ))
        .await
        .unwrap();
    store.lock().unwrap().throttle_every = Some(10);
    let ran = jobs::drain_crm_jobs(&db, &crm, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(ran, 250);
    {
        let s = store.lock().unwrap();
        assert_eq!(s.customers.len(), 250);
        assert_eq!(
            s.count("CreateCustomer"),
            250,
            "known customers are not created again"
        );
        assert_eq!(s.count("AddTags"), 500);
    }
    // A wait longer than the tick's budget ends the tick: the syncs wait in the queue.
    owner
        .batch_execute(&format!(
            "UPDATE queue_jobs SET status = 'pending', run_at = now(), attempts = 0
             WHERE tenant_id = '{}' AND job_type = 'crm_sync'",
            t.id
        ))
        .await
        .unwrap();
    store.lock().unwrap().throttle_every = None;
    store.lock().unwrap().scripted.push((
        429,
        vec![("retry-after", "30".into())],
        json!({ "errors": "Exceeded 2 calls per second for api client." }),
    ));
    let started = std::time::Instant::now();
    let ran = jobs::drain_crm_jobs(&db, &crm, Duration::from_secs(4))
        .await
        .unwrap();
    assert_eq!(ran, 0);
    assert!(started.elapsed() < Duration::from_secs(4));
    let delayed = |jobs: &[JobRow]| {
        jobs.iter()
            .filter(|j| j.status == "pending" && j.delay_seconds > 25.0)
            .count()
    };
    assert_eq!(
        delayed(&sync_jobs(&app, &t).await),
        100,
        "the claimed batch waits"
    );
    // The next tick calls Shopify no more: the client knows the shop is to wait.
    let calls = store.lock().unwrap().calls;
    let ran = jobs::drain_crm_jobs(&db, &crm, Duration::from_secs(4))
        .await
        .unwrap();
    assert_eq!(ran, 0);
    assert_eq!(store.lock().unwrap().calls, calls);
    assert_eq!(delayed(&sync_jobs(&app, &t).await), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_shopify_tokens_are_kept_sealed_and_refreshed_before_they_expire() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.tenant("Session Winery").await;
    without_demo_enrollments(&app, &t).await;
    let (url, store) = shopify_stand_in().await;
    let crm = connectors(&app, &url);
    store.lock().unwrap().refresh_token = "shprt_first".into();
    // Refused: an expiring token without what refreshing it takes.
    let r = configure(
        &app,
        &t.admin_key,
        json!({ "provider": "SHOPIFY", "shop": SHOP,
        "credentials": { "accessToken": TOKEN, "refreshToken": "shprt_first", "expiresIn": 300 } }),
    )
    .await;
    assert_eq!(
        r["data"]["configureCrm"]["userErrors"][0]["field"],
        json!(["input", "credentials"]),
        "{r}"
    );
    let r = configure(
        &app,
        &t.admin_key,
        json!({ "provider": "SHOPIFY", "shop": SHOP,
        "credentials": { "accessToken": TOKEN, "refreshToken": "shprt_first", "expiresIn": 300,
            "clientId": CLIENT_ID, "webhookSecret": WEBHOOK_SECRET } }),
    )
    .await;
    assert_eq!(r["data"]["configureCrm"]["userErrors"], json!([]), "{r}");
    let session = app
        .gql(
            &t.admin_key,
            "{ crmConnection { session { expiresAt lastRefreshError } } }",
            json!({}),
        )
        .await;
    let expires: chrono::DateTime<chrono::Utc> = session["data"]["crmConnection"]["session"]
        ["expiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = (expires - chrono::Utc::now()).num_seconds();
    assert!((290..=300).contains(&left), "{session}");
    // Sealed: no token in the clear anywhere.
    for token in [TOKEN, "shprt_first"] {
        let clear = format!(
            "SELECT count(*) AS n FROM platform_sessions s JOIN crm_connections c USING (tenant_id)
             WHERE s.tenant_id = '{}' AND (position(convert_to('{token}', 'UTF8') IN s.access_token_encrypted) > 0
               OR position(convert_to('{token}', 'UTF8') IN s.refresh_token_encrypted) > 0
               OR position(convert_to('{token}', 'UTF8') IN c.credentials_sealed) > 0)",
            t.id
        );
        assert_eq!(count(&app, &clear).await, 0, "{token}");
    }

    // Due within ten minutes: refreshed at Shopify's token endpoint, once.
    assert_eq!(crm.refresh_sessions(t.id).await.unwrap(), 1);
    assert_eq!(
        crm.refresh_sessions(t.id).await.unwrap(),
        0,
        "not due any more"
    );
    {
        let s = store.lock().unwrap();
        assert_eq!(s.refreshes, 1, "{:?}", s.refresh_requests);
        assert_eq!(s.refresh_token, "shprt_1");
    }
    let session = app
        .gql(
            &t.admin_key,
            "{ crmConnection { session { expiresAt lastRefreshError } } }",
            json!({}),
        )
        .await;
    let expires: chrono::DateTime<chrono::Utc> = session["data"]["crmConnection"]["session"]
        ["expiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (expires - chrono::Utc::now()).num_seconds() > 3500,
        "{session}"
    );
    assert_eq!(
        session["data"]["crmConnection"]["session"]["lastRefreshError"],
        Value::Null
    );

    // Syncs use the new token (Shopify no longer takes the first one).
    let enrollment = enroll_new(&app, &t, "session@tag.example", "Bronze").await;
    assert_eq!(run(&app, &t, &crm).await, 1);
    assert_eq!(
        sync_state(&app, &t, &enrollment).await["syncStatus"],
        "SYNCED"
    );

    // A refused refresh is kept for the admin, without a token, and tried again later.
    let mut owner = app.owner().await;
    owner
        .batch_execute(&format!(
            "UPDATE platform_sessions SET expires_at = now() WHERE tenant_id = '{}'",
            t.id
        ))
        .await
        .unwrap();
    store.lock().unwrap().refresh_token = "shprt_revoked_elsewhere".into();
    assert_eq!(crm.refresh_sessions(t.id).await.unwrap(), 0);
    let session = app
        .gql(
            &t.admin_key,
            "{ crmConnection { session { lastRefreshError } } }",
            json!({}),
        )
        .await;
    let error = session["data"]["crmConnection"]["session"]["lastRefreshError"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("400") && error.contains("invalid"),
        "{error}"
    );
    assert!(
        !error.contains("shprt") && !error.contains("shpat"),
        "{error}"
    );
    assert_eq!(store.lock().unwrap().refresh_requests.len(), 2);
    // Still due: the next tick tries again.
    assert_eq!(crm.refresh_sessions(t.id).await.unwrap(), 0);
    assert_eq!(store.lock().unwrap().refresh_requests.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_without_a_crm_discount_gets_a_shopify_tag_named_after_it() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.tenant("Tagless Winery").await;
    without_demo_enrollments(&app, &t).await;
    let (url, store) = shopify_stand_in().await;
    let crm = connectors(&app, &url);
    configure(&app, &t.admin_key, shopify_input()).await;
    let mut owner = app.owner().await;
    owner
        .batch_execute(&format!("UPDATE club_stages SET crm_discount_id = NULL, name = 'Bronze Réserve 2026' WHERE tenant_id = '{}' AND name = 'Bronze'", t.id))
        .await
        .unwrap();
    let enrollment = enroll_new(&app, &t, "slug@tag.example", "Bronze Réserve 2026").await;
    assert_eq!(run(&app, &t, &crm).await, 1);
    assert_eq!(
        sync_state(&app, &t, &enrollment).await["syncStatus"],
        "SYNCED"
    );
    assert_eq!(
        store
            .lock()
            .unwrap()
            .by_email("slug@tag.example")
            .unwrap()
            .tags,
        ["club-bronze-réserve-2026".to_owned()].into()
    );
    let program = app
        .gql(
            &t.admin_key,
            "{ clubProgram { stages { name crmDiscountId } } }",
            json!({}),
        )
        .await;
    assert!(
        program["data"]["clubProgram"]["stages"]
            .as_array()
            .unwrap()
            .contains(&json!({ "name": "Bronze Réserve 2026", "crmDiscountId": "club-bronze-réserve-2026" })),
        "{program}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_deleted_in_shopify_since_is_made_again_once() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.tenant("Deleted Winery").await;
    without_demo_enrollments(&app, &t).await;
    let (url, store) = shopify_stand_in().await;
    let crm = connectors(&app, &url);
    configure(&app, &t.admin_key, shopify_input()).await;
    let enrollment = enroll_new(&app, &t, "gone@tag.example", "Bronze").await;
    assert_eq!(run(&app, &t, &crm).await, 1);
    let first = store
        .lock()
        .unwrap()
        .by_email("gone@tag.example")
        .unwrap()
        .id
        .clone();
    // Deleted in Shopify; then the enrollment is cancelled: the kept id is refused, the
    // customer is made again and their tag moved on the new one.
    store.lock().unwrap().customers.clear();
    let r = app
        .gql(
            &t.admin_key,
            "mutation($e: ID!) { cancelEnrollment(input: { enrollmentId: $e }) { userErrors { code } } }",
            json!({ "e": enrollment }),
        )
        .await;
    assert_eq!(
        r["data"]["cancelEnrollment"]["userErrors"],
        json!([]),
        "{r}"
    );
    assert_eq!(run(&app, &t, &crm).await, 1);
    assert_eq!(
        sync_state(&app, &t, &enrollment).await["syncStatus"],
        "SYNCED"
    );
    let again = {
        let s = store.lock().unwrap();
        let again = s.by_email("gone@tag.example").unwrap().clone();
        assert_eq!(s.count("CreateCustomer"), 2, "{:?}", s.operations);
        again
    };
    assert_ne!(again.id, first);
    assert!(again.tags.is_empty());
    let kept = format!(
        "SELECT count(*) AS n FROM customers WHERE tenant_id = '{}' AND crm_customer_id = '{}'",
        t.id, again.id
    );
    assert_eq!(count(&app, &kept).await, 1);
}

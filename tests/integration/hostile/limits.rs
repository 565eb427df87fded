//! Budgets, operation time and response size, GET's operation name and body limits, and
//! a tenant's share of the pool: refused with a code, never a 503 or a hang.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_budget_is_rate_limited_without_running_and_others_are_not() {
    let app = TestApp::start_with(ServeArgs {
        tenant_cost_budget: 100,
        tenant_cost_restore: 1,
        ..ServeArgs::default()
    })
    .await;
    let a = app.bare_tenant("Spender").await;
    let b = app.bare_tenant("Saver").await;
    let page = json!({ "query": "{ apiKeys(first: 40) { nodes { id } } }" });
    // It could cost 80 (40 keys of one field); it holds one key: the result's objects and
    // lists (data, apiKeys, nodes, the key) are what the budget keeps paying.
    let (status, ok) = app.post(Some(&a.admin_key), page.clone()).await;
    assert_eq!(status, 200, "{ok}");
    let cost = &ok["extensions"]["cost"];
    assert_eq!(cost["requestedQueryCost"], 80, "{ok}");
    assert_eq!(cost["actualQueryCost"], 4, "{ok}");
    assert_eq!(cost["throttleStatus"]["currentlyAvailable"], json!(96.0));
    // Each request needs 80 available and leaves 4 fewer (the bucket regains 1 a
    // second): the sixth finds too little.
    let mut answers = Vec::new();
    for _ in 0..8 {
        let response = app
            .client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&a.admin_key)
            .json(&page)
            .send()
            .await
            .unwrap();
        let refused = response.status() == 429;
        answers.push(response);
        if refused {
            break;
        }
    }
    let response = answers.pop().unwrap();
    assert_eq!(response.status(), 429);
    assert!(
        (4..=6).contains(&answers.len()),
        "{} answered first",
        answers.len()
    );
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    assert!(body["data"].is_null());
    assert_eq!(body["extensions"]["cost"]["requestedQueryCost"], 80);
    // Another tenant's budget is its own.
    let (status, other) = app.post(Some(&b.admin_key), page).await;
    assert_eq!(status, 200, "{other}");
    // Over WebSocket too.
    let payload = over_websocket(
        &app,
        &a.admin_key,
        "{ apiKeys(first: 40) { nodes { id } } }",
        &json!({}),
    )
    .await;
    assert_eq!(
        payload["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{payload}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_past_their_time_or_response_size_are_stopped_with_a_code() {
    let slow = TestApp::start_with(ServeArgs {
        request_timeout_ms: 1,
        ..ServeArgs::default()
    })
    .await;
    let t = slow.tenant("Slow").await;
    let query = "{ customers(first: 50, filter: { search: \"example\" }) { nodes { id email activities(first: 20) { nodes { id } } } } }";
    let r = slow.gql(&t.admin_key, query, json!({})).await;
    assert_eq!(error_code(&r), Some("QUERY_TOO_COMPLEX"), "{r:.300}");
    assert!(r["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("ran longer"));
    // The server goes on serving (the stopped request's connection was cleaned up).
    let (status, _) = slow
        .post(Some(&t.admin_key), json!({ "query": "{ __typename }" }))
        .await;
    assert_eq!(status, 200);

    let small = TestApp::start_with(ServeArgs {
        max_response_bytes: 100,
        ..ServeArgs::default()
    })
    .await;
    let t = small.bare_tenant("Small responses");
    let t = t.await;
    let r = small
        .gql(
            &t.admin_key,
            "{ viewer { tenant { id slug name } apiKey { id name role } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("QUERY_TOO_COMPLEX"), "{r}");
    assert!(r["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("larger than 100 bytes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_runs_the_operation_its_operation_name_names_and_413_answers_json() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Named").await;
    let document = "query A { viewer { apiKey { role } } } query B { __typename } mutation C { revokeApiKey(input: { id: \"00000000-0000-0000-0000-000000000000\" }) { userErrors { code } } }";
    let get = |name: &'static str| {
        app.client
            .get(format!("{}/graphql", app.base))
            .bearer_auth(&t.admin_key)
            .query(&[("query", document), ("operationName", name)])
            .send()
    };
    let a: Value = get("A").await.unwrap().json().await.unwrap();
    assert_eq!(
        a["data"],
        json!({ "viewer": { "apiKey": { "role": "ADMIN" } } }),
        "{a}"
    );
    let b: Value = get("B").await.unwrap().json().await.unwrap();
    assert_eq!(b["data"], json!({ "__typename": "Query" }), "{b}");
    assert_eq!(get("C").await.unwrap().status(), 405);

    let huge = "x".repeat(300 * 1024);
    let response = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&t.admin_key)
        .json(&json!({ "query": huge }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_holding_its_share_of_the_pool_waits_alone_and_is_rate_limited_never_unavailable()
{
    let app = TestApp::start_with(ServeArgs {
        tenant_pool_share: 3,
        ..ServeArgs::default()
    })
    .await;
    let a = app.tenant("Crowded").await;
    let b = app.bare_tenant("Neighbour").await;
    let r = app
        .gql(
            &a.admin_key,
            "{ customers(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
    let customer = r["data"]["customers"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.gql(&b.admin_key, "{ viewer { tenant { slug } } }", json!({}))
        .await;
    // The customer's row locked from outside: every points change of A's waits for it,
    // holding its connection.
    let mut owner = app.owner().await;
    owner
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM customers WHERE id = '{customer}' FOR UPDATE"
        ))
        .await
        .unwrap();
    let adjust = "mutation($c: ID!) { adjustPoints(input: { customerId: $c, points: 5, reason: \"wait\" }) { pointTransaction { points } userErrors { code } } }";
    let waiting: Vec<_> = (0..8)
        .map(|_| {
            let (client, base, key) = (app.client.clone(), app.base.clone(), a.admin_key.clone());
            let body = json!({ "query": adjust, "variables": { "c": customer } });
            tokio::spawn(async move {
                let started = Instant::now();
                let response = client
                    .post(format!("{base}/graphql"))
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let answer = response.json::<Value>().await.unwrap();
                (started.elapsed(), answer)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A holds its three connections and queues the rest behind them: B is served at once.
    let started = Instant::now();
    let (status, r) = app
        .post(Some(&b.admin_key), json!({ "query": "{ viewer { tenant { slug } } customers(first: 5) { nodes { id } } }" }))
        .await;
    assert_eq!(status, 200, "{r}");
    assert!(r["errors"].is_null(), "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A's requests past its share give up after their wait, RATE_LIMITED.
    tokio::time::sleep(Duration::from_secs(5)).await;
    owner.batch_execute("COMMIT").await.unwrap();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for task in waiting {
        let (took, r) = task.await.unwrap();
        let outcome = match error_code(&r) {
            Some(code) => {
                assert!(
                    took < Duration::from_secs(5),
                    "refused after its wait: {took:?} {r}"
                );
                code.to_owned()
            }
            None => {
                assert_eq!(
                    r["data"]["adjustPoints"]["pointTransaction"]["points"], 5,
                    "{r}"
                );
                "ok".to_owned()
            }
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    assert_eq!(outcomes.get("ok"), Some(&3), "{outcomes:?}");
    assert_eq!(outcomes.get("RATE_LIMITED"), Some(&5), "{outcomes:?}");
}

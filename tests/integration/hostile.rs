//! Hostile input, as a hostile but fair tester sends it: documents and variables built
//! to crash, hang or exhaust the server, over GET, POST and WebSocket, each answered with
//! a code within a bound while another tenant's canary keeps being served; and the
//! regressions found that way (SSRF through webhook URLs, NUL characters, overflowing
//! money and points, the idempotency rule for business-rule violations, GET's
//! `operationName`, widget keys' view of their tenant, budgets and limits).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel_async::SimpleAsyncConnection;
use growthgraph::config::ServeArgs;
use serde_json::{json, Value};

use crate::common::{error_code, TestApp, TestTenant};
use crate::events::Subscriber;

/// How long any hostile request may take to be answered.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// Eight fragments on `Query`, each spreading the next ten times: 10^8 `__typename`s.
fn fragment_fan_out() -> String {
    let mut document = String::from("{ ...F0 }");
    for i in 0..8 {
        document.push_str(&format!(
            " fragment F{i} on Query {{ {}}}",
            format!("...F{} ", i + 1).repeat(10)
        ));
    }
    document + " fragment F8 on Query { __typename }"
}

/// The hostile documents, with the code each must be answered with.
fn corpus() -> Vec<(&'static str, String, Value, &'static str)> {
    let none = json!({});
    let id = "00000000-0000-0000-0000-000000000000";
    let searches: String = (0..1000)
        .map(|i| {
            format!("s{i}: customers(first: 1, filter: {{ search: \"x\" }}) {{ nodes {{ id }} }} ")
        })
        .collect();
    let unpaged_chain = format!(
        "{{ customer(id: \"{id}\") {{ {} id {} }} }}",
        "leads { customer { ".repeat(5),
        " } }".repeat(5)
    );
    vec![
        (
            "list literal 2000 deep",
            format!(
                "{{ customers(first: 1, filter: {{ search: {} }}) {{ nodes {{ id }} }} }}",
                nested("[", "\"x\"", "]", 2000)
            ),
            none.clone(),
            "QUERY_TOO_COMPLEX",
        ),
        (
            "object literal 2000 deep",
            format!(
                "mutation {{ upsertCustomer(input: {{ email: \"a@b.c\", metadata: {} }}) {{ customer {{ id }} }} }}",
                nested("{a: ", "1", "}", 2000)
            ),
            none.clone(),
            "QUERY_TOO_COMPLEX",
        ),
        ("fragment fan-out", fragment_fan_out(), none.clone(), "QUERY_TOO_COMPLEX"),
        ("1000 aliased searches", format!("{{ {searches} }}"), none.clone(), "QUERY_TOO_COMPLEX"),
        ("unpaged chain", unpaged_chain, none.clone(), "QUERY_TOO_COMPLEX"),
        (
            "selections nested 40 deep",
            format!("{{ {} }}", nested("... on Query { ", "__typename", " }", 40)),
            none.clone(),
            "QUERY_TOO_COMPLEX",
        ),
        (
            "NUL in a JSON variable",
            "mutation($m: JSON) { upsertCustomer(input: { email: \"nul@example.com\", metadata: $m }) { customer { id } } }".into(),
            json!({ "m": { "note": "a\u{0}b" } }),
            "BAD_USER_INPUT",
        ),
        (
            "NUL in a JSON key",
            "mutation($m: JSON) { upsertCustomer(input: { email: \"nul@example.com\", metadata: $m }) { customer { id } } }".into(),
            json!({ "m": { "a\u{0}": 1 } }),
            "BAD_USER_INPUT",
        ),
        (
            "NUL in an email literal",
            "{ customer(email: \"a\\u0000@b.c\") { id } }".into(),
            none.clone(),
            "BAD_USER_INPUT",
        ),
        (
            "NUL in event types",
            "query($t: [String!]) { events(types: $t) { nodes { id } } }".into(),
            json!({ "t": ["lead.created", "x\u{0}"] }),
            "BAD_USER_INPUT",
        ),
        (
            "a huge page",
            "{ customers(first: 99999999999) { nodes { id } } }".into(),
            none.clone(),
            "BAD_USER_INPUT",
        ),
        (
            "a huge Int variable",
            "query($n: Int) { customers(first: $n) { nodes { id } } }".into(),
            json!({ "n": 1e30 }),
            "BAD_USER_INPUT",
        ),
        (
            "variables nested 60 deep",
            "mutation($m: JSON) { upsertCustomer(input: { email: \"deep@example.com\", metadata: $m }) { customer { id } } }".into(),
            serde_json::from_str(&nested("{\"a\":", "1", "}", 70)).unwrap(),
            "BAD_USER_INPUT",
        ),
    ]
}

/// The first payload the server sends for a `subscribe` of `query` (graphql-transport-ws).
async fn over_websocket(app: &TestApp, key: &str, query: &str, variables: &Value) -> Value {
    let mut subscriber = Subscriber::connect(app, key, false).await;
    subscriber.subscribe("1", query, variables.clone()).await;
    let answer = tokio::time::timeout(ANSWER_WITHIN, subscriber.next()).await;
    answer
        .expect("answered in time")
        .expect("the socket stays open")
}

/// Another tenant's simple query, looped until `stop`: counts its answers and failures.
fn canary(
    app: &TestApp,
    key: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, usize)> {
    let (client, base) = (app.client.clone(), app.base.clone());
    tokio::spawn(async move {
        let (mut ok, mut failed) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let response = client
                .post(format!("{base}/graphql"))
                .bearer_auth(&key)
                .json(&json!({ "query": "{ viewer { tenant { slug } } }" }))
                .send()
                .await;
            let answered = match response {
                Ok(r) if r.status() == 200 => {
                    r.json::<Value>().await.is_ok_and(|v| v["errors"].is_null())
                }
                _ => false,
            };
            if answered && started.elapsed() < ANSWER_WITHIN {
                ok += 1;
            } else {
                failed += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (ok, failed)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_documents_get_coded_answers_on_every_transport_while_a_canary_is_served() {
    let app = TestApp::start().await;
    let a = app.tenant("Hostile A").await;
    let b = app.bare_tenant("Canary B").await;
    let stop = Arc::new(AtomicBool::new(false));
    let canary = canary(&app, b.admin_key.clone(), stop.clone());
    for (name, query, variables, code) in corpus() {
        // POST, with a key.
        let started = Instant::now();
        let (status, response) = app
            .post(
                Some(&a.admin_key),
                json!({ "query": query, "variables": variables }),
            )
            .await;
        assert!(
            started.elapsed() < ANSWER_WITHIN,
            "{name}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            error_code(&response),
            Some(code),
            "{name} (POST {status}): {response:.300}"
        );
        assert!(
            response["data"].is_null()
                || response["data"]
                    .as_object()
                    .is_some_and(|d| d.values().all(Value::is_null)),
            "{name}: {response:.300}"
        );
        // GET, without any key (the document is measured before the key is looked at).
        if query.len() < 6_000 && !query.starts_with("mutation") {
            let started = Instant::now();
            let response = app
                .client
                .get(format!("{}/graphql", app.base))
                .query(&[
                    ("query", query.as_str()),
                    ("variables", &variables.to_string()),
                ])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            assert!(started.elapsed() < ANSWER_WITHIN, "{name} over GET");
            assert!(
                matches!(status, 400 | 401),
                "{name} over GET: {status} {body:.300}"
            );
            let answered = error_code(&body);
            assert!(
                answered == Some("UNAUTHENTICATED") || answered == Some(code),
                "{name} over GET: {body:.300}"
            );
        }
        // WebSocket.
        let started = Instant::now();
        let payload = over_websocket(&app, &a.admin_key, &query, &variables).await;
        assert!(started.elapsed() < ANSWER_WITHIN, "{name} over WebSocket");
        let first_code = payload["errors"][0]["extensions"]["code"].as_str();
        assert_eq!(
            first_code,
            Some(code),
            "{name} over WebSocket: {payload:.300}"
        );
    }
    // The nesting GET cannot parse is refused before authentication, with its code.
    let deep = format!(
        "{{ customers(filter: {{ search: {} }}) {{ nodes {{ id }} }} }}",
        nested("[", "1", "]", 2000)
    );
    let response = app
        .client
        .get(format!("{}/graphql", app.base))
        .query(&[("query", deep.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some("QUERY_TOO_COMPLEX"), "{body}");

    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = canary.await.unwrap();
    assert!(ok > 0, "the canary was served");
    assert_eq!(failed, 0, "the canary was never refused nor slow");
    // Nothing was written by any of it.
    let r = app
        .gql(
            &a.admin_key,
            "{ customers(first: 100, filter: { search: \"example.com\" }) { nodes { email } } }",
            json!({}),
        )
        .await;
    let emails = r["data"]["customers"]["nodes"].to_string();
    assert!(
        !emails.contains("nul@") && !emails.contains("deep@"),
        "{emails}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiqls_introspection_runs_and_reports_its_cost_and_budget() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Introspection").await;
    let query = include_str!("introspection.graphql");
    let (status, response) = app
        .post(Some(&t.admin_key), json!({ "query": query }))
        .await;
    assert_eq!(status, 200, "{response:.300}");
    assert!(response["errors"].is_null(), "{response:.300}");
    let types = response["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Customer"));
    let cost = &response["extensions"]["cost"];
    assert!(cost["requestedQueryCost"].as_u64().unwrap() > 100, "{cost}");
    let throttle = &cost["throttleStatus"];
    assert_eq!(throttle["maximumAvailable"], json!(10_000_000.0));
    assert!(
        throttle["currentlyAvailable"].as_f64().unwrap() < 10_000_000.0,
        "{throttle}"
    );
    assert_eq!(throttle["restoreRate"], json!(5_000_000.0));
}

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

async fn configure_widget(app: &TestApp, t: &TestTenant) -> String {
    let r = app
        .gql(&t.admin_key, "mutation { configureWidget(input: {}) { widgetConfig { apiKey } userErrors { code } } }", json!({}))
        .await;
    r["data"]["configureWidget"]["widgetConfig"]["apiKey"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widget_key_does_not_see_its_tenant() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Widget owner").await;
    let widget = configure_widget(&app, &t).await;
    let (status, r) = app
        .post(
            Some(&widget),
            json!({ "query": "{ viewer { tenant { id slug name } } }" }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    let text = r.to_string();
    assert!(
        !text.contains(&t.slug) && !text.contains(&t.id.to_string()),
        "{text}"
    );
}

async fn customer(app: &TestApp, t: &TestTenant, email: &str) -> String {
    let r = app
        .gql(
            &t.admin_key,
            "mutation($e: String!) { upsertCustomer(input: { email: $e }) { customer { id } } }",
            json!({ "e": email }),
        )
        .await;
    r["data"]["upsertCustomer"]["customer"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_and_points_never_overflow_what_the_api_and_the_columns_hold() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Overflow").await;
    let c = customer(&app, &t, "rich@example.com").await;
    let mut owner = app.owner().await;
    owner
        .batch_execute(&format!(
            "UPDATE customers SET ltv = 9999999990.00 WHERE id = '{c}';
             INSERT INTO point_transactions (tenant_id, customer_id, sequence, transaction_type, points, balance_after)
               VALUES ('{t}', '{c}', 1, 'adjusted', 2147483600, 2147483600);
             UPDATE customers SET points_balance = 2147483600, points_lifetime = 2147483600 WHERE id = '{c}';",
            t = t.id
        ))
        .await
        .unwrap();
    // An order whose total would take the lifetime value past numeric(12,2).
    let order = "mutation($c: ID!, $t: Decimal!) { recordOrder(input: { customerId: $c, orderTotal: $t }) { order { id } userErrors { field code } } }";
    let r = app
        .gql(&t.admin_key, order, json!({ "c": c, "t": "10.00" }))
        .await;
    assert_eq!(
        r["data"]["recordOrder"]["userErrors"],
        json!([{ "field": ["input", "orderTotal"], "code": "INVALID" }]),
        "{r}"
    );
    let r = app
        .gql(&t.admin_key, order, json!({ "c": c, "t": "9.99" }))
        .await;
    assert!(r["data"]["recordOrder"]["order"]["id"].is_string(), "{r}");
    // Points past 32 bits.
    let adjust = "mutation($c: ID!, $p: Int!) { adjustPoints(input: { customerId: $c, points: $p, reason: \"bonus\" }) { pointTransaction { balanceAfter } userErrors { field code } } }";
    let r = app
        .gql(&t.admin_key, adjust, json!({ "c": c, "p": 100 }))
        .await;
    assert_eq!(
        r["data"]["adjustPoints"]["userErrors"][0]["code"], "INVALID",
        "{r}"
    );
    let r = app
        .gql(&t.admin_key, adjust, json!({ "c": c, "p": 47 }))
        .await;
    assert_eq!(
        r["data"]["adjustPoints"]["pointTransaction"]["balanceAfter"], 2_147_483_647,
        "{r}"
    );
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID) { customer(id: $id) { pointsBalance pointsLifetime ltv } }",
            json!({ "id": c }),
        )
        .await;
    assert_eq!(
        r["data"]["customer"],
        json!({ "pointsBalance": 2_147_483_647, "pointsLifetime": 2_147_483_647, "ltv": "9999999999.99" }),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_keys_first_answer_stands_even_when_it_was_a_refusal() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Idempotent refusals").await;
    let c = customer(&app, &t, "poor@example.com").await;
    let r = app
        .gql(&t.admin_key, "mutation { createReward(input: { name: \"Prize\", rewardType: MERCHANDISE, pointsCost: 50, unlimitedInventory: true }) { reward { id } } }", json!({}))
        .await;
    let reward = r["data"]["createReward"]["reward"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let redeem = "mutation($c: ID!, $r: ID!, $k: String) { redeemReward(input: { customerId: $c, rewardId: $r, quantity: 1, idempotencyKey: $k }) { redemption { id } userErrors { code } } }";
    let vars = json!({ "c": c, "r": reward, "k": "retry-me" });
    let first = app.gql(&t.admin_key, redeem, vars.clone()).await;
    assert_eq!(
        first["data"]["redeemReward"]["userErrors"][0]["code"], "INSUFFICIENT_POINTS",
        "{first}"
    );
    // The customer can now afford it, but the key's first answer stands, also when
    // retries race.
    let adjust = "mutation($c: ID!) { adjustPoints(input: { customerId: $c, points: 500, reason: \"funds\" }) { userErrors { code } } }";
    app.gql(&t.admin_key, adjust, json!({ "c": c })).await;
    let retries =
        futures_util::future::join_all((0..4).map(|_| app.gql(&t.admin_key, redeem, vars.clone())))
            .await;
    for retry in &retries {
        assert_eq!(
            retry["data"]["redeemReward"], first["data"]["redeemReward"],
            "{retry}"
        );
    }
    // A new key redeems; the refused one wrote nothing but its answer.
    let fresh = app
        .gql(
            &t.admin_key,
            redeem,
            json!({ "c": c, "r": reward, "k": "new" }),
        )
        .await;
    assert!(
        fresh["data"]["redeemReward"]["redemption"]["id"].is_string(),
        "{fresh}"
    );
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID) { customer(id: $id) { pointsBalance redemptions { nodes { id } } } }",
            json!({ "id": c }),
        )
        .await;
    assert_eq!(r["data"]["customer"]["pointsBalance"], 450, "{r}");
    assert_eq!(
        r["data"]["customer"]["redemptions"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The same key with another input is still a reuse.
    let other = app
        .gql(
            &t.admin_key,
            redeem,
            json!({ "c": c, "r": reward, "k": "retry-me", "q": 2 }),
        )
        .await;
    assert_eq!(other["data"]["redeemReward"], first["data"]["redeemReward"]);
    let changed = "mutation($c: ID!, $r: ID!) { redeemReward(input: { customerId: $c, rewardId: $r, quantity: 2, idempotencyKey: \"retry-me\" }) { userErrors { code } } }";
    let r = app
        .gql(&t.admin_key, changed, json!({ "c": c, "r": reward }))
        .await;
    assert_eq!(
        r["data"]["redeemReward"]["userErrors"][0]["code"], "IDEMPOTENCY_KEY_REUSED",
        "{r}"
    );
}

const CREATE_ENDPOINT: &str = "mutation($u: String!) { createWebhookEndpoint(input: { url: $u, eventTypes: [\"lead.created\"] }) { webhookEndpoint { id } userErrors { field code message } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_never_reach_the_servers_own_network() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("SSRF").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://localhost/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]:5432/",
        "https://10.0.0.1/hook",
        "https://0.0.0.0/hook",
    ] {
        let r = app
            .gql(&t.admin_key, CREATE_ENDPOINT, json!({ "u": url }))
            .await;
        let errors = &r["data"]["createWebhookEndpoint"]["userErrors"];
        assert_eq!(errors[0]["code"], "INVALID", "{url}: {r}");
        assert_eq!(errors[0]["field"], json!(["input", "url"]), "{url}");
    }
    let r = app
        .gql(&t.admin_key, "{ webhookEndpoints { id } }", json!({}))
        .await;
    assert_eq!(
        r["data"]["webhookEndpoints"],
        json!([]),
        "nothing was registered"
    );

    // An endpoint registered while the development flag allowed it (a host name that
    // resolves to loopback) is still refused at delivery by a server without the flag.
    let dev = TestApp::start_with(ServeArgs {
        allow_insecure_webhooks: true,
        ..ServeArgs::default()
    })
    .await;
    let t = dev.bare_tenant("Rebinding").await;
    // The receiver, named by a host name that resolves to loopback.
    let (url, receiver) = crate::webhooks::receiver().await;
    let url = url.replace("127.0.0.1", "localhost");
    let received = || receiver.lock().unwrap().received.len();
    let r = dev
        .gql(&t.admin_key, CREATE_ENDPOINT, json!({ "u": url }))
        .await;
    assert!(
        r["data"]["createWebhookEndpoint"]["webhookEndpoint"]["id"].is_string(),
        "{r}"
    );
    dev.gql(
        &t.admin_key,
        "mutation { ingestLead(input: { name: \"L\", email: \"l@example.com\" }) { lead { id } } }",
        json!({}),
    )
    .await;
    let db = growthgraph::db::TenantDb::new(dev.pool.clone(), t.id);
    let strict = growthgraph::domain::webhooks::target::delivery_client(false);
    growthgraph::jobs::run_due_webhook_jobs(&db, &strict, false, 10)
        .await
        .unwrap();
    assert_eq!(received(), 0, "nothing reached loopback");
    let r = dev
        .gql(
            &t.admin_key,
            "{ webhookDeliveries(first: 5) { nodes { status attempts error } } }",
            json!({}),
        )
        .await;
    let delivery = &r["data"]["webhookDeliveries"]["nodes"][0];
    assert!(delivery["attempts"].as_i64().unwrap() >= 1, "{r}");
    assert!(
        delivery["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not public"),
        "{r}"
    );
    // The same delivery with the flag goes out.
    let lenient = growthgraph::domain::webhooks::target::delivery_client(true);
    let mut owner = dev.owner().await;
    owner
        .batch_execute("UPDATE queue_jobs SET run_at = now()")
        .await
        .unwrap();
    growthgraph::jobs::run_due_webhook_jobs(&db, &lenient, true, 10)
        .await
        .unwrap();
    assert_eq!(received(), 1);
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

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

use crate::common::{error_code, user_error_code, TestApp, TestTenant};
use crate::events::Subscriber;

mod limits;
mod regressions;

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
    let query = include_str!("../introspection.graphql");
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

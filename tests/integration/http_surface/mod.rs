//! The HTTP surface and hostile input: GET is query-only, CSRF-prone content types and
//! oversized bodies or batches are refused, hostile queries get coded errors fast while
//! the server stays responsive, and database outages surface as UNAVAILABLE / 503.

use std::time::{Duration, Instant};

use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::AsyncPgConnection;
use growthgraph::app::AppState;
use growthgraph::config::ServeArgs;
use serde_json::{json, Value};

use crate::common::{backend_pid, error_code, refusal, snapshot_state, TestApp};

mod browser;
mod pool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_graphiql_are_served_by_the_binary() {
    let app = TestApp::start().await;
    let get = |path: &str| app.client.get(format!("{}{path}", app.base)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("growthgraph_http_requests_total"));
    assert_eq!(app.metric("growthgraph_event_listener_up").await, 1);

    let page = get("/").await.unwrap().text().await.unwrap();
    assert!(page.contains("GraphiQL"));
    assert!(
        !page.contains("https://") && !page.contains("http://"),
        "GraphiQL must not load from a CDN"
    );
    for (asset, kind) in [
        ("graphiql.min.js", "text/javascript"),
        ("graphiql.min.css", "text/css"),
        ("react.production.min.js", "text/javascript"),
        ("react-dom.production.min.js", "text/javascript"),
    ] {
        let response = get(&format!("/assets/graphiql/{asset}")).await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert_eq!(response.headers()["content-type"], kind);
        assert!(response.bytes().await.unwrap().len() > 1000);
    }
    assert_eq!(
        get("/assets/graphiql/../Cargo.toml")
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_serves_queries_and_refuses_mutations_with_405() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let get = |query: &str| {
        app.client
            .get(format!("{}/graphql", app.base))
            .query(&[("query", query)])
            .bearer_auth(&a.admin_key)
            .send()
    };
    let response = get("{ viewer { tenant { slug } } }").await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["tenant"]["slug"], a.slug);

    let response = get("mutation { createApiKey(input: { name: \"x\", role: ADMIN }) { secret } }")
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let mut owner = app.owner().await;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let keys: N = diesel::sql_query("SELECT count(*) AS n FROM api_keys")
        .get_result(&mut owner)
        .await
        .unwrap();
    assert_eq!(keys.n, 1, "the GET mutation must not run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_prone_content_types_oversized_bodies_and_batches_are_refused() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let body = json!({ "query": "{ viewer { tenant { id } } }" }).to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let response = app
            .client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&a.admin_key)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415, "{content_type}");
    }

    let huge = json!({ "query": format!("{{ viewer {{ tenant {{ id }} }} }} # {}", "x".repeat(300 * 1024)) });
    let (status, _) = app.post(Some(&a.admin_key), huge).await;
    assert_eq!(status, 413);

    let one = json!({ "query": "{ viewer { tenant { id } } }" });
    let (status, response) = app.post(Some(&a.admin_key), json!([one, one])).await;
    assert_eq!(status, 200);
    assert_eq!(response.as_array().unwrap().len(), 2);
    let (status, response) = app
        .post(Some(&a.admin_key), Value::Array(vec![one; 11]))
        .await;
    assert_eq!(
        (status, error_code(&response)),
        (400, Some("BAD_USER_INPUT"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_get_coded_errors_fast_and_the_server_stays_up() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let deep = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "fields { type { ofType { ".repeat(4),
        " } } }".repeat(4)
    );
    let aliases: String = (0..7000)
        .map(|i| format!("a{i}:viewer{{apiKey{{id}}}}"))
        .collect();
    let directives = format!(
        "{{ viewer {} {{ tenant {{ id }} }} }}",
        "@include(if: true) ".repeat(50)
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("deep nesting", deep, "QUERY_TOO_COMPLEX"),
        ("alias bomb", format!("{{ {aliases} }}"), "QUERY_TOO_COMPLEX"),
        ("directive overload", directives, "BAD_USER_INPUT"),
        (
            "circular fragments",
            "fragment A on Query { ...B viewer { tenant { id } } } fragment B on Query { ...A } { ...A }".into(),
            "BAD_USER_INPUT",
        ),
        ("first: 1e9", "{ apiKeys(first: 1e9) { nodes { id } } }".into(), "BAD_USER_INPUT"),
        ("first: 101", "{ apiKeys(first: 101) { nodes { id } } }".into(), "BAD_USER_INPUT"),
        ("malformed cursor", "{ apiKeys(after: \"%%%\") { nodes { id } } }".into(), "BAD_USER_INPUT"),
        ("bad uuid", "mutation { revokeApiKey(input: { id: \"nope\" }) { userErrors { code } } }".into(), "BAD_USER_INPUT"),
        ("syntax error", "{ viewer { ".into(), "BAD_USER_INPUT"),
    ];
    for (name, query, code) in cases {
        let started = Instant::now();
        let (status, response) = app
            .post(Some(&a.admin_key), json!({ "query": query }))
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{name} took {:?}",
            started.elapsed()
        );
        assert_eq!(status, 200, "{name}");
        assert_eq!(error_code(&response), Some(code), "{name}: {response}");
        assert!(response["data"].is_null(), "{name}");
    }
    let (_, response) = app
        .post(Some(&a.admin_key), json!({ "query": "mutation { revokeApiKey(input: { id: \"nope\" }) { userErrors { code } } }" }))
        .await;
    assert_eq!(
        response["errors"][0]["extensions"]["field"],
        json!(["input", "id"])
    );
    let (_, response) = app
        .post(
            Some(&a.admin_key),
            json!({ "query": "{ apiKeys(first: 101) { nodes { id } } }" }),
        )
        .await;
    assert_eq!(
        response["errors"][0]["extensions"]["field"],
        json!(["first"])
    );

    // NUL bytes in input: refused at their field before anything runs, nothing written.
    let r = app
        .gql(
            &a.admin_key,
            "mutation($name: String!) { createApiKey(input: { name: $name, role: ANALYST }) { secret userErrors { field code } } }",
            json!({ "name": "bad\u{0}name" }),
        )
        .await;
    assert_eq!(
        refusal(&r, "createApiKey"),
        (&json!(["input", "name"]), &json!("BAD_USER_INPUT")),
        "{r}"
    );
    assert!(r["data"].is_null());

    // Every successful response reports its cost.
    let (_, ok) = app
        .post(
            Some(&a.admin_key),
            json!({ "query": "{ viewer { tenant { id } } }" }),
        )
        .await;
    let cost = &ok["extensions"]["cost"];
    assert!(cost["requestedQueryCost"].as_u64().unwrap() > 0, "{ok}");
    assert!(
        cost["throttleStatus"]["currentlyAvailable"]
            .as_f64()
            .is_some(),
        "{ok}"
    );
    // A page costs its size times its selection: n × (nodes: 1 + id: 1). The same
    // document the second time (parsed once, kept): its cost still follows the variable.
    for (n, cost) in [(7, 14), (3, 6)] {
        let (_, page) = app
            .post(
                Some(&a.admin_key),
                json!({ "query": "query($n: Int) { customers(first: $n) { nodes { id } } }", "variables": { "n": n } }),
            )
            .await;
        assert_eq!(
            page["extensions"]["cost"]["requestedQueryCost"], cost,
            "{page}"
        );
    }
    assert_eq!(
        app.client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_means_503_readyz_and_unavailable_errors() {
    // A pool pointing at a socket directory where no server listens.
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://postgres@{}:5432/nowhere",
        dir.path().to_str().unwrap().replace('/', "%2F")
    );
    let pool = growthgraph::db::build_pool(&url, 2, Duration::from_secs(1), Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hub = growthgraph::events::EventHub::new(pool.clone());
    let state = AppState::new(
        pool,
        None,
        Default::default(),
        ServeArgs::default(),
        None,
        hub,
    );
    tokio::spawn(async move {
        axum::serve(listener, growthgraph::http::router(state))
            .await
            .unwrap()
    });
    let client = reqwest::Client::new();

    let started = Instant::now();
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let response = client
        .post(format!("{base}/graphql"))
        .bearer_auth(format!("gg_admin_{}", "ab".repeat(24)))
        .json(&json!({ "query": "{ viewer { tenant { id } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some("UNAVAILABLE"));
    assert!(
        !body.to_string().contains("nowhere"),
        "no connection details leak: {body}"
    );
    assert!(started.elapsed() < Duration::from_secs(8), "fails fast");
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// A document that passed the full validation skips it afterwards, but only while its
/// variables hold values that cannot fail it: any other request gets exactly the answer
/// the same document gets the first time it is sent (codes, messages, locations, data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validated_document_skips_validation_only_while_its_variables_cannot_fail_it() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let document = "query($first: Int, $risk: ChurnRisk, $search: String, $id: ID!) { \
         customers(first: $first, filter: { churnRisk: $risk, search: $search }) { nodes { id } } \
         customer(id: $id) { id } }";
    let id = uuid::Uuid::new_v4().to_string();
    let skipped = || app.metric("growthgraph_graphql_validation_skipped_total");
    let good = json!({ "first": 2, "risk": "LOW", "search": "a", "id": id });
    let (status, first) = app
        .post(
            Some(&a.admin_key),
            json!({ "query": document, "variables": good }),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert!(first["errors"].is_null(), "{first}");

    // (variables, whether they are plain, whether the request is bad input)
    let cases = [
        (good.clone(), true, false),
        (json!({ "first": 101, "id": id }), true, true),
        (json!({ "first": "ten", "id": id }), false, true),
        (json!({ "first": -5, "id": id }), false, true),
        (json!({ "risk": "EXTREME", "id": id }), false, true),
        (json!({ "search": 5, "id": id }), false, true),
        (json!({ "id": null }), false, true),
        (json!({ "id": true }), false, true),
        (json!({ "id": id, "risk": null }), false, false),
    ];
    for (n, (variables, plain, bad)) in cases.into_iter().enumerate() {
        // The same document, new to the server (trailing spaces keep every location).
        let fresh = format!("{document}{}", " ".repeat(n + 1));
        let (fresh_status, fresh_body) = app
            .post(
                Some(&a.admin_key),
                json!({ "query": fresh, "variables": variables }),
            )
            .await;
        let before = skipped().await;
        let (status, body) = app
            .post(
                Some(&a.admin_key),
                json!({ "query": document, "variables": variables }),
            )
            .await;
        assert_eq!(skipped().await - before, u64::from(plain), "{variables}");
        assert_eq!((status, &body), (fresh_status, &fresh_body), "{variables}");
        let code = bad.then_some("BAD_USER_INPUT");
        assert_eq!(error_code(&body), code, "{variables}: {body}");
    }
}

/// Apollo's automatic persisted queries over POST and GET (an unknown hash, the document
/// sent once with it, then the hash alone; a hash that is not the document's refused),
/// and `--trusted-documents`: only the listed documents run, by hash or by text, over
/// HTTP and WebSocket alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_run_by_their_hash_and_trusted_documents_alone_run() {
    use futures_util::SinkExt;
    use growthgraph::auth::sha256_hex;
    use tokio_tungstenite::tungstenite::Message;

    let app = TestApp::start().await;
    let t = app.bare_tenant("Persisted").await;
    let query = "query Name { viewer { tenant { name } } }";
    let hash = sha256_hex(query);
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let (status, r) = app
        .post(Some(&t.admin_key), json!({ "extensions": persisted }))
        .await;
    assert_eq!(
        (status, error_code(&r)),
        (200, Some("PERSISTED_QUERY_NOT_FOUND")),
        "{r}"
    );
    assert_eq!(r["errors"][0]["message"], "PersistedQueryNotFound");
    let (status, r) = app
        .post(
            Some(&t.admin_key),
            json!({ "query": query, "extensions": persisted }),
        )
        .await;
    assert_eq!(
        (status, &r["data"]["viewer"]["tenant"]["name"]),
        (200, &json!("Persisted"))
    );
    let (status, r) = app
        .post(Some(&t.admin_key), json!({ "extensions": persisted }))
        .await;
    assert_eq!(
        (status, &r["data"]["viewer"]["tenant"]["name"]),
        (200, &json!("Persisted")),
        "{r}"
    );
    let get = |extensions: Value| {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/graphql", app.base),
            [("extensions", extensions.to_string())],
        )
        .unwrap();
        let key = t.admin_key.clone();
        let client = app.client.clone();
        async move {
            let response = client.get(url).bearer_auth(key).send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, r) = get(persisted.clone()).await;
    assert_eq!(
        (status, &r["data"]["viewer"]["tenant"]["name"]),
        (200, &json!("Persisted")),
        "{r}"
    );
    let wrong = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256_hex("{ x }") } });
    let (status, r) = app
        .post(
            Some(&t.admin_key),
            json!({ "query": query, "extensions": wrong }),
        )
        .await;
    assert_eq!(
        (status, error_code(&r)),
        (400, Some("BAD_USER_INPUT")),
        "{r}"
    );

    // Trusted documents only.
    let dir = tempfile::tempdir().unwrap();
    let subscription = "subscription Feed { events(after: \"0\") { id } }";
    let mutation = "mutation Make { upsertCustomer(input: { email: \"t@example.com\", name: \"T\" }) { userErrors { code } } }";
    let manifest = json!({ "format": "apollo-persisted-query-manifest", "version": 1, "operations": [
        { "id": hash, "name": "Name", "type": "query", "body": query },
        { "id": sha256_hex(mutation), "name": "Make", "type": "mutation", "body": mutation },
        { "id": sha256_hex(subscription), "name": "Feed", "type": "subscription", "body": subscription },
    ] });
    let path = dir.path().join("trusted.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let trusted = TestApp::start_with(ServeArgs {
        trusted_documents: Some(path),
        ..ServeArgs::default()
    })
    .await;
    let t = trusted.bare_tenant("Trusted").await;
    for body in [
        json!({ "extensions": persisted }),
        json!({ "query": query }),
    ] {
        let (status, r) = trusted.post(Some(&t.admin_key), body).await;
        assert_eq!(
            (status, &r["data"]["viewer"]["tenant"]["name"]),
            (200, &json!("Trusted")),
            "{r}"
        );
    }
    let (status, r) = trusted
        .post(
            Some(&t.admin_key),
            json!({ "query": "{ viewer { apiKey { id } } }" }),
        )
        .await;
    assert_eq!((status, error_code(&r)), (403, Some("FORBIDDEN")), "{r}");
    let mut socket = acknowledged_socket(&trusted, &t.admin_key).await;
    let untrusted = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { events(after: \"0\") { type } }" } });
    socket
        .send(Message::Text(untrusted.to_string().into()))
        .await
        .unwrap();
    let refused = next(&mut socket).await;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    let listed = json!({ "id": "2", "type": "subscribe", "payload": { "extensions": { "persistedQuery": { "version": 1, "sha256Hash": sha256_hex(subscription) } } } });
    socket
        .send(Message::Text(listed.to_string().into()))
        .await
        .unwrap();
    // The listed subscription runs: an event a listed mutation makes now reaches it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, r) = trusted
        .post(Some(&t.admin_key), json!({ "query": mutation }))
        .await;
    assert_eq!((status, &r["errors"]), (200, &Value::Null), "{r}");
    let event = loop {
        let message = next(&mut socket).await;
        if message["id"] == "2" {
            break message;
        }
    };
    assert_eq!(event["type"], "next", "{event}");
    assert!(
        event["payload"]["data"]["events"]["id"].is_string(),
        "{event}"
    );
}

/// A `graphql-transport-ws` socket of `app`, acknowledged for `key`.
async fn acknowledged_socket(app: &TestApp, key: &str) -> Socket {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut request = app.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let mut socket = tokio_tungstenite::connect_async(request).await.unwrap().0;
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {key}") } });
    socket
        .send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await["type"], "connection_ack");
    socket
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message of `socket`, as JSON.
async fn next(socket: &mut Socket) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// `/metrics` reads as Prometheus reads it (parsed by `prometheus-parse`): request
/// durations by operation name and type, errors by code, pool waits and statement
/// durations, running subscriptions, the job queue and the build; every answer of
/// `/graphql` carries its correlation id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_answers_carry_a_correlation_id() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let app = TestApp::start().await;
    let t = app.bare_tenant("Metrics").await;
    let scrape = || async {
        let text = reqwest::get(format!("{}/metrics", app.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        prometheus_parse::Scrape::parse(lines).expect("Prometheus text")
    };
    // A histogram's count, or a counter's or gauge's value, of the sample with `labels`.
    let value = |scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.last().map_or(0.0, |b| b.count)
                }
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Summary(_) => 0.0,
            })
            .sum::<f64>()
    };
    let before = scrape().await;
    let mut ids = std::collections::HashSet::new();
    for (query, _) in [
        ("query MetricsProbe { viewer { tenant { name } } }", "query"),
        ("mutation MetricsWrite { upsertCustomer(input: { email: \"m@example.com\", name: \"M\" }) { userErrors { code } } }", "mutation"),
    ] {
        let response = app
            .client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&t.admin_key)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-correlation-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 2, "one correlation id per request");
    let (status, _) = app
        .post(Some("gg_admin_nope"), json!({ "query": "{ __typename }" }))
        .await;
    assert_eq!(status, 401);
    // A subscription running over a WebSocket.
    let mut socket = acknowledged_socket(&app, &t.admin_key).await;
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { events { id } }" } });
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.insert_for(
        &t,
        "INSERT INTO queue_jobs (tenant_id, job_type, payload, run_at) VALUES ($1, 'crm_sync', '{}', now() + interval '1 day')",
    )
    .await;

    let after = scrape().await;
    let grew = |metric: &str, labels: &[(&str, &str)]| {
        value(&after, metric, labels) - value(&before, metric, labels)
    };
    let duration = "growthgraph_graphql_request_duration_seconds";
    assert_eq!(
        grew(
            duration,
            &[("operation", "MetricsProbe"), ("type", "query")]
        ),
        1.0
    );
    assert_eq!(
        grew(
            duration,
            &[("operation", "MetricsWrite"), ("type", "mutation")]
        ),
        1.0
    );
    assert!(grew("growthgraph_errors_total", &[("code", "UNAUTHENTICATED")]) >= 1.0);
    assert!(grew("growthgraph_db_pool_wait_seconds", &[]) >= 2.0);
    assert!(grew("growthgraph_sql_statement_duration_seconds", &[]) >= 2.0);
    assert!(value(&after, "growthgraph_subscriptions", &[]) >= 1.0);
    assert!(grew("growthgraph_http_requests_total", &[]) >= 3.0);
    assert_eq!(
        value(
            &after,
            "growthgraph_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "growthgraph_db_pool_size"),
        "the pool"
    );
    assert_eq!(
        value(&after, "growthgraph_jobs", &[("type", "crm_sync")]),
        1.0,
        "the job queue"
    );
}

//! Signed webhooks against a local receiver: signature, event id, retries with backoff,
//! automatic disabling after repeated failures, the delivery log.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use growthgraph::config::ServeArgs;
use growthgraph::db::TenantDb;
use growthgraph::jobs;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::common::TestApp;

#[derive(Default)]
pub(crate) struct Receiver {
    fail: bool,
    pub(crate) received: Vec<(HeaderMap, Bytes)>,
}

async fn receive(
    State(state): State<Arc<Mutex<Receiver>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut r = state.lock().unwrap();
    r.received.push((headers, body));
    if r.fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

/// A local webhook endpoint on loopback recording what it receives: its URL and state.
pub(crate) async fn receiver() -> (String, Arc<Mutex<Receiver>>) {
    let state = Arc::new(Mutex::new(Receiver::default()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

/// The receiver's side of the contract, written independently of the server's code.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = headers["x-growthgraph-signature"].to_str().unwrap();
    let (t, v1) = header.split_once(',').unwrap();
    let timestamp = t.strip_prefix("t=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    timestamp == headers["x-growthgraph-timestamp"].to_str().unwrap()
        && v1.strip_prefix("v1=").unwrap() == expected
}

#[derive(QueryableByName, Debug)]
struct JobRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Double)]
    delay_seconds: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_retried_with_backoff_and_endpoints_disabled_after_failures() {
    // The receiver listens on loopback: the operator's development flag allows it.
    let app = TestApp::start_with(ServeArgs {
        allow_insecure_webhooks: true,
        ..ServeArgs::default()
    })
    .await;
    let t = app.bare_tenant("Hooks A").await;
    let (url, state) = receiver().await;
    let r = app
        .gql(&t.admin_key, "mutation($u: String!) { createWebhookEndpoint(input: { url: $u, eventTypes: [\"lead.created\"] }) { webhookEndpoint { id enabled } secret userErrors { code } } }", json!({ "u": url }))
        .await;
    let secret = r["data"]["createWebhookEndpoint"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let endpoint = r["data"]["createWebhookEndpoint"]["webhookEndpoint"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    let r = app
        .gql(&t.admin_key, "{ webhookEndpoints { id url } }", json!({}))
        .await;
    assert!(
        !r.to_string().contains(&secret),
        "the secret is never returned again"
    );

    let ingest = |email: &'static str| {
        let (app, key) = (&app, t.admin_key.clone());
        async move {
            let q = "mutation($e: String!) { ingestLead(input: { name: \"Hook\", email: $e }) { lead { id } } }";
            app.gql(&key, q, json!({ "e": email })).await["data"]["ingestLead"]["lead"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let lead = ingest("hook@example.com").await;
    let db = TenantDb::new(app.pool.clone(), t.id);
    let client = growthgraph::domain::webhooks::target::delivery_client(true);
    assert_eq!(
        jobs::run_due_webhook_jobs(&db, &client, true, 10)
            .await
            .unwrap(),
        1
    );
    {
        let r = state.lock().unwrap();
        assert_eq!(r.received.len(), 1);
        let (headers, body) = &r.received[0];
        assert!(verify(&secret, headers, body), "signature verifies");
        assert!(!verify("whsec_wrong_secret_123", headers, body));
        let body: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body["type"], "lead.created");
        assert_eq!(body["subjectId"], lead.as_str());
        assert_eq!(
            headers["x-growthgraph-event-id"].to_str().unwrap(),
            body["id"].as_str().unwrap()
        );
    }
    // Nothing left to deliver; other event types are not sent.
    app.gql(&t.admin_key, "mutation($id: ID!) { tagLead(input: { leadId: $id, tag: \"x\" }) { userErrors { code } } }", json!({ "id": lead })).await;
    assert_eq!(
        jobs::run_due_webhook_jobs(&db, &client, true, 10)
            .await
            .unwrap(),
        0
    );

    // Failures are retried with exponential backoff.
    state.lock().unwrap().fail = true;
    ingest("retry@example.com").await;
    assert_eq!(
        jobs::run_due_webhook_jobs(&db, &client, true, 10)
            .await
            .unwrap(),
        1
    );
    let mut owner = app.owner().await;
    let job: JobRow = diesel::sql_query(
        "SELECT status, extract(epoch FROM run_at - now())::float8 AS delay_seconds FROM queue_jobs WHERE job_type = 'webhook_delivery' AND status <> 'completed'",
    )
    .get_result(&mut owner)
    .await
    .unwrap();
    assert_eq!(job.status, "pending");
    assert!((1.0..=2.5).contains(&job.delay_seconds), "{job:?}");
    owner
        .batch_execute("UPDATE queue_jobs SET run_at = now() WHERE job_type = 'webhook_delivery'")
        .await
        .unwrap();
    assert_eq!(
        jobs::run_due_webhook_jobs(&db, &client, true, 10)
            .await
            .unwrap(),
        1
    );
    let job: JobRow = diesel::sql_query(
        "SELECT status, extract(epoch FROM run_at - now())::float8 AS delay_seconds FROM queue_jobs WHERE job_type = 'webhook_delivery' AND status <> 'completed'",
    )
    .get_result(&mut owner)
    .await
    .unwrap();
    assert!(
        (3.0..=4.5).contains(&job.delay_seconds),
        "the delay doubles: {job:?}"
    );

    // Repeated failures disable the endpoint; later events are not queued for it.
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        ingest(email).await;
    }
    owner
        .batch_execute("UPDATE queue_jobs SET run_at = now() WHERE job_type = 'webhook_delivery'")
        .await
        .unwrap();
    jobs::run_due_webhook_jobs(&db, &client, true, 10)
        .await
        .unwrap();
    let r = app
        .gql(
            &t.admin_key,
            "{ webhookEndpoints { enabled consecutiveFailures disabledAt } }",
            json!({}),
        )
        .await;
    let e = &r["data"]["webhookEndpoints"][0];
    assert_eq!(e["enabled"], false, "{r}");
    assert!(e["consecutiveFailures"].as_i64().unwrap() >= 5);
    let before = state.lock().unwrap().received.len();
    ingest("after@example.com").await;
    owner
        .batch_execute("UPDATE queue_jobs SET run_at = now() WHERE job_type = 'webhook_delivery'")
        .await
        .unwrap();
    jobs::run_due_webhook_jobs(&db, &client, true, 10)
        .await
        .unwrap();
    assert_eq!(
        state.lock().unwrap().received.len(),
        before,
        "a disabled endpoint receives nothing"
    );

    // The delivery log.
    let r = app.gql(&t.admin_key, "query($e: ID) { webhookDeliveries(endpointId: $e, first: 50) { nodes { status attempts responseStatus eventType } } }", json!({ "e": endpoint })).await;
    let log = r["data"]["webhookDeliveries"]["nodes"].as_array().unwrap();
    assert!(log
        .iter()
        .any(|d| d["status"] == "SUCCEEDED" && d["responseStatus"] == 204));
    assert!(log
        .iter()
        .any(|d| d["responseStatus"] == 500 && d["attempts"].as_i64().unwrap() >= 2));
    // Bad input.
    let r = app.gql(&t.admin_key, "mutation { createWebhookEndpoint(input: { url: \"ftp://x\" }) { userErrors { field code } } }", json!({})).await;
    assert_eq!(
        r["data"]["createWebhookEndpoint"]["userErrors"][0]["field"],
        json!(["input", "url"])
    );
}

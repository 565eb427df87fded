//! Messages that leave: templates checked and rendered, consent at send time, a real SMTP
//! round trip (aiosmtpd), SendGrid, Twilio and Resend against local servers checking the
//! exact requests, at most one provider call per message, and signed status hooks moving
//! messages forward only.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use base64::Engine;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use growthgraph::config::ServeArgs;
use growthgraph::db::TenantDb;
use growthgraph::domain::messages::{ops, providers};
use growthgraph::secrets::SecretKey;
use hmac::{Hmac, Mac};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};

use crate::common::{TestApp, TestTenant};
use crate::comms::SECRET_KEY;

// ---- an SMTP server: Debian's aiosmtpd, writing what it receives into a maildir ---------

pub(crate) struct SmtpSink {
    pub(crate) port: u16,
    dir: tempfile::TempDir,
    child: std::process::Child,
}

fn python() -> &'static str {
    // The system interpreter has Debian's python3-aiosmtpd.
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

impl SmtpSink {
    pub(crate) async fn start() -> SmtpSink {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        let child = std::process::Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (Debian: python3-aiosmtpd)");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "aiosmtpd never listened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        SmtpSink { port, dir, child }
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The raw messages received so far.
    pub(crate) fn received(&self) -> Vec<String> {
        let new: PathBuf = self.dir.path().join("mail").join("new");
        let Ok(entries) = std::fs::read_dir(new) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- an HTTP provider: records each request, answers from a script --------------------

#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// A scripted answer: status, headers, body.
pub(crate) type Answer = (u16, Vec<(&'static str, String)>, String);

#[derive(Default)]
pub(crate) struct Script {
    pub(crate) seen: Vec<Seen>,
    /// Answers for the next requests (status, headers, body); then `default`.
    pub(crate) answers: Vec<Answer>,
    pub(crate) default: Option<Answer>,
}

async fn provide(
    State(state): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let mut s = state.lock().unwrap();
    s.seen.push(Seen {
        method,
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let (status, headers, body) = if s.answers.is_empty() {
        s.default.clone().expect("an answer")
    } else {
        s.answers.remove(0)
    };
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (name, value) in headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

pub(crate) async fn provider(default: Answer) -> (String, Arc<Mutex<Script>>) {
    let state = Arc::new(Mutex::new(Script {
        default: Some(default),
        ..Script::default()
    }));
    let app = axum::Router::new()
        .fallback(provide)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

// ---- helpers ------------------------------------------------------------------------------

fn serve_args() -> ServeArgs {
    ServeArgs {
        secret_key: Some(SECRET_KEY.parse().unwrap()),
        ..ServeArgs::default()
    }
}

fn key() -> SecretKey {
    SECRET_KEY.parse().unwrap()
}

fn settings() -> providers::ProviderSettings {
    providers::ProviderSettings::default()
}

async fn run(app: &TestApp, tenant: &TestTenant, providers: &providers::Providers) -> usize {
    let db = TenantDb::new(app.pool.clone(), tenant.id);
    ops::run_due(&db, providers, Some(&key()), 50)
        .await
        .unwrap()
}

async fn configure(app: &TestApp, t: &TestTenant, input: Value) -> Value {
    let r = app
        .gql(
            &t.admin_key,
            "mutation($i: ConfigureChannelInput!) { configureChannel(input: $i) { channelConfiguration { id } hookToken userErrors { code message } } }",
            json!({ "i": input }),
        )
        .await;
    assert_eq!(
        r["data"]["configureChannel"]["userErrors"],
        json!([]),
        "{r}"
    );
    r["data"]["configureChannel"].clone()
}

async fn customer(
    app: &TestApp,
    t: &TestTenant,
    email: &str,
    name: &str,
    phone: Option<&str>,
) -> String {
    let r = app
        .gql(
            &t.admin_key,
            "mutation($i: UpsertCustomerInput!) { upsertCustomer(input: $i) { customer { id } userErrors { code message } } }",
            json!({ "i": { "email": email, "name": name, "phone": phone } }),
        )
        .await;
    r["data"]["upsertCustomer"]["customer"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned()
}

const SEND: &str = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { message { id status recipient subject content htmlContent communicationType } userErrors { field code message } } }";

async fn send(app: &TestApp, key: &str, input: Value) -> Value {
    app.gql(key, SEND, json!({ "i": input })).await["data"]["sendMessage"].clone()
}

async fn message(app: &TestApp, t: &TestTenant, id: &str) -> Value {
    app.gql(
        &t.admin_key,
        "query($id: ID!) { message(id: $id) { id status provider providerMessageId failureCode errorMessage attempts sentAt deliveredAt openedAt content htmlContent subject } }",
        json!({ "id": id }),
    )
    .await["data"]["message"]
        .clone()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.owner().await;
    diesel::sql_query(sql)
        .get_result::<N>(&mut conn)
        .await
        .unwrap()
        .n
}

async fn event_types(app: &TestApp, t: &TestTenant, subject: &str) -> Vec<String> {
    let mut conn = app.owner().await;
    #[derive(diesel::QueryableByName)]
    struct E {
        #[diesel(sql_type = diesel::sql_types::Text)]
        event_type: String,
    }
    diesel::sql_query(format!(
        "SELECT event_type FROM domain_events WHERE tenant_id = '{}' AND subject_id = '{subject}' ORDER BY id",
        t.id
    ))
    .load::<E>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|e| e.event_type)
    .collect()
}

// ---- tests --------------------------------------------------------------------------------

const SAVE_TEMPLATE: &str = "mutation($i: SaveCommunicationTemplateInput!) { saveCommunicationTemplate(input: $i) { template { id variables } userErrors { field code message } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_checked_when_saved_and_a_message_goes_through_a_real_smtp_server() {
    let sink = SmtpSink::start().await;
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Smtp Winery").await;
    let templates = format!(
        "SELECT count(*) AS n FROM communication_templates WHERE tenant_id = '{}'",
        t.id
    );

    // Refused when saved, nothing written: a syntax error, an undeclared variable.
    let r = app.gql(&t.admin_key, SAVE_TEMPLATE, json!({ "i": {
        "templateType": "MONTHLY_STATUS", "channel": "EMAIL", "name": "Monthly",
        "subject": "Hi", "textContent": "Hello\n{% if points %}you have points", "variables": ["points"] } })).await;
    let e = &r["data"]["saveCommunicationTemplate"]["userErrors"][0];
    assert_eq!(e["code"], "INVALID");
    assert_eq!(e["field"], json!(["input", "textContent"]));
    assert!(e["message"].as_str().unwrap().starts_with("line 2:"), "{e}");
    let r = app.gql(&t.admin_key, SAVE_TEMPLATE, json!({ "i": {
        "templateType": "MONTHLY_STATUS", "channel": "EMAIL", "name": "Monthly",
        "subject": "Hi", "textContent": "ok", "htmlContent": "<p>ok</p>\n<p>{{ secret }}</p>", "variables": ["points"] } })).await;
    let e = &r["data"]["saveCommunicationTemplate"]["userErrors"][0];
    assert_eq!(e["field"], json!(["input", "htmlContent"]));
    assert_eq!(
        e["message"],
        "line 2: variable `secret` is not declared in variables"
    );
    assert_eq!(count(&app, &templates).await, 0);

    let r = app
        .gql(
            &t.admin_key,
            SAVE_TEMPLATE,
            json!({ "i": {
        "templateType": "MONTHLY_STATUS", "channel": "EMAIL", "name": "Monthly",
        "subject": "{{ customer.firstName or customer.name }}, your {{ points }} points",
        "textContent": "Dear {{ customer.name }}, you have {{ points }} points.",
        "htmlContent": "<p>Dear {{ customer.name }}, you have <b>{{ points }}</b> points.</p>",
        "variables": ["customer", "points"] } }),
        )
        .await;
    assert_eq!(
        r["data"]["saveCommunicationTemplate"]["userErrors"],
        json!([]),
        "{r}"
    );
    let template = r["data"]["saveCommunicationTemplate"]["template"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = app.gql(&t.admin_key, "query($t: ID!, $v: JSON) { previewTemplate(templateId: $t, variables: $v) { rendered { subject text html } userErrors { code message } } }",
        json!({ "t": template, "v": { "customer": { "name": "<Ann & Bo>" }, "points": 7 } })).await;

    assert_eq!(
        r["data"]["previewTemplate"]["rendered"],
        json!({
            "subject": "<Ann & Bo>, your 7 points",
            "text": "Dear <Ann & Bo>, you have 7 points.",
            "html": "<p>Dear &lt;Ann &amp; Bo&gt;, you have <b>7</b> points.</p>",
        })
    );
    let r = app.gql(&t.admin_key, "query($t: ID!) { previewTemplate(templateId: $t, variables: {}) { rendered { text } userErrors { code field } } }",
        json!({ "t": template })).await;
    assert_eq!(
        r["data"]["previewTemplate"]["userErrors"][0]["code"],
        "INVALID"
    );

    configure(
        &app,
        &t,
        json!({ "channel": "EMAIL", "provider": "SMTP", "enabled": true,
        "fromAddress": "club@winery.example", "fromName": "The Club" }),
    )
    .await;
    let ann = customer(&app, &t, "ann@example.com", "<Ann & Bo>", None).await;
    let sent = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "customerId": ann,
        "templateId": template, "variables": { "points": 120 } }),
    )
    .await;
    assert_eq!(sent["userErrors"], json!([]), "{sent}");
    let id = sent["message"]["id"].as_str().unwrap().to_owned();
    assert_eq!(sent["message"]["status"], "QUEUED");
    assert_eq!(sent["message"]["recipient"], "ann@example.com");
    assert_eq!(sent["message"]["communicationType"], "MONTHLY_STATUS");
    assert_eq!(
        sent["message"]["htmlContent"],
        "<p>Dear &lt;Ann &amp; Bo&gt;, you have <b>120</b> points.</p>"
    );

    let providers = providers::Providers::new(providers::ProviderSettings {
        smtp_url: Some(sink.url()),
        ..settings()
    });
    assert_eq!(run(&app, &t, &providers).await, 1);
    let m = message(&app, &t, &id).await;
    assert_eq!(m["status"], "SENT", "{m}");
    assert_eq!(m["provider"], "smtp");
    assert_eq!(m["providerMessageId"], format!("<{id}@growthgraph>"));
    let received = sink.received();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert!(mail.contains("To: ann@example.com"), "{mail}");
    assert!(
        mail.contains("From: \"The Club\" <club@winery.example>"),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("Message-ID: <{id}@growthgraph>")),
        "{mail}"
    );
    assert!(
        mail.contains("Dear <Ann & Bo>, you have 120 points."),
        "{mail}"
    );
    assert!(mail.contains("text/html"), "{mail}");
    assert_eq!(
        event_types(&app, &t, &id).await,
        vec!["message.queued", "message.sent"]
    );
    let r = app
        .gql(
            &t.admin_key,
            "query($m: ID) { emailEvents(messageId: $m) { status recipientEmail } }",
            json!({ "m": id }),
        )
        .await;
    assert_eq!(
        r["data"]["emailEvents"],
        json!([{ "status": "sent", "recipientEmail": "ann@example.com" }])
    );
    // Nothing left to send.
    assert_eq!(run(&app, &t, &providers).await, 0);
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_is_checked_at_send_time_and_unconfigured_channels_say_so() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Consent Winery").await;
    let ann = customer(&app, &t, "ann@consent.example", "Ann", Some("+15551230001")).await;
    let body = json!({ "channel": "EMAIL", "customerId": ann, "subject": "News", "body": "Hello" });
    let marketing = send(&app, &t.admin_key, body.clone()).await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut receipt = body.clone();
    receipt["communicationType"] = json!("TRANSACTIONAL");
    let receipt = send(&app, &t.admin_key, receipt).await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The customer opts out of marketing email after the message was queued.
    let r = app.gql(&t.admin_key, "mutation($c: ID!) { setCommunicationPreferences(input: { customerId: $c, preferences: [{ channel: EMAIL, type: MARKETING, optedIn: false }] }) { userErrors { code message } } }", json!({ "c": ann })).await;
    assert_eq!(
        r["data"]["setCommunicationPreferences"]["userErrors"],
        json!([]),
        "{r}"
    );

    // No channel configured, no local delivery: failed, honestly.
    let strict = providers::Providers::new(settings());
    assert_eq!(run(&app, &t, &strict).await, 2);
    let m = message(&app, &t, &marketing).await;
    assert_eq!(m["status"], "SUPPRESSED", "{m}");
    assert!(m["errorMessage"]
        .as_str()
        .unwrap()
        .contains("opted out of marketing"));
    let m = message(&app, &t, &receipt).await;
    assert_eq!(
        (m["status"].as_str(), m["failureCode"].as_str()),
        (Some("FAILED"), Some("not_configured")),
        "{m}"
    );
    assert_eq!(
        event_types(&app, &t, &marketing).await,
        vec!["message.queued", "message.suppressed"]
    );
    assert_eq!(
        event_types(&app, &t, &receipt).await,
        vec!["message.queued", "message.failed"]
    );

    // With local delivery, the rendered message is kept and readable.
    let local = providers::Providers::new(providers::ProviderSettings {
        local_delivery: true,
        ..settings()
    });
    let mut sms = json!({ "channel": "SMS", "customerId": ann, "body": "Your table is ready", "communicationType": "TRANSACTIONAL" });
    let id = send(&app, &t.admin_key, sms.clone()).await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(run(&app, &t, &local).await, 1);
    let m = message(&app, &t, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["provider"].as_str()),
        (Some("SENT"), Some("local"))
    );
    let r = app
        .gql(
            &t.admin_key,
            "{ messages(channel: SMS, first: 5) { nodes { id content recipient status } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["messages"]["nodes"][0],
        json!({ "id": id, "content": "Your table is ready", "recipient": "+15551230001", "status": "SENT" })
    );

    // The tenant turns its own marketing emails off (seed 000 email_preferences).
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "UPDATE tenants SET email_preferences = '{{\"marketing\": false}}' WHERE id = '{}'",
        t.id
    ))
    .await
    .unwrap();
    let bob = customer(&app, &t, "bob@consent.example", "Bob", None).await;
    let id = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "customerId": bob, "subject": "News", "body": "Hi" }),
    )
    .await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    run(&app, &t, &local).await;
    let m = message(&app, &t, &id).await;
    assert_eq!(m["status"], "SUPPRESSED");
    assert_eq!(m["errorMessage"], "the tenant turned marketing emails off");

    // Refused input: coded, nothing written.
    let before = count(
        &app,
        &format!(
            "SELECT count(*) AS n FROM communication_log WHERE tenant_id = '{}'",
            t.id
        ),
    )
    .await;
    for (input, field) in [
        (
            json!({ "channel": "EMAIL", "to": "not-an-email", "body": "x" }),
            "to",
        ),
        (
            json!({ "channel": "SMS", "to": "12345", "body": "x" }),
            "to",
        ),
        (
            json!({ "channel": "PHONE", "to": "+15551230001", "body": "x" }),
            "channel",
        ),
        (json!({ "channel": "EMAIL", "body": "x" }), "to"),
        (
            json!({ "channel": "EMAIL", "to": "a@b.example", "body": "" }),
            "body",
        ),
        (
            json!({ "channel": "EMAIL", "to": "a@b.example", "body": "x\u{0}y" }),
            "body",
        ),
    ] {
        let r = app.gql(&t.admin_key, SEND, json!({ "i": input })).await;
        let e = if r["data"]["sendMessage"].is_null() {
            r["errors"][0]["extensions"]["field"].clone()
        } else {
            r["data"]["sendMessage"]["userErrors"][0]["field"].clone()
        };
        assert_eq!(e, json!(["input", field]), "{input}: {r}");
    }
    let analyst = app.key(&t, growthgraph::auth::Role::Analyst).await;
    sms["to"] = json!("+15551230002");
    let r = app.gql(&analyst, SEND, json!({ "i": sms })).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT count(*) AS n FROM communication_log WHERE tenant_id = '{}'",
                t.id
            )
        )
        .await,
        before
    );
}

fn sendgrid_key_pair() -> (EcdsaKeyPair, String) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // SubjectPublicKeyInfo of a P-256 key, base64 DER, as SendGrid shows it.
    let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    spki.extend_from_slice(pair.public_key().as_ref());
    let public = base64::engine::general_purpose::STANDARD.encode(spki);
    (pair, public)
}

async fn post_hook(
    app: &TestApp,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = app.client.post(format!("{}{path}", app.base)).body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

fn signed_sendgrid(pair: &EcdsaKeyPair, body: &str) -> Vec<(&'static str, String)> {
    let timestamp = "1733400000".to_owned();
    let mut signed = timestamp.as_bytes().to_vec();
    signed.extend_from_slice(body.as_bytes());
    let signature = pair.sign(&SystemRandom::new(), &signed).unwrap();
    vec![
        ("content-type", "application/json".into()),
        (
            "x-twilio-email-event-webhook-signature",
            base64::engine::general_purpose::STANDARD.encode(signature.as_ref()),
        ),
        ("x-twilio-email-event-webhook-timestamp", timestamp),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendgrid_gets_its_documented_request_and_its_signed_events_move_messages_forward_only() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Grid Winery").await;
    let other = app.bare_tenant("Other Winery").await;
    let (pair, public) = sendgrid_key_pair();
    let (url, script) = provider((
        202,
        vec![("x-message-id", "sgMsg001".into())],
        String::new(),
    ))
    .await;
    let configured = configure(
        &app,
        &t,
        json!({ "channel": "EMAIL", "provider": "SENDGRID", "enabled": true,
        "fromAddress": "club@grid.example", "fromName": "Grid Club",
        "credentials": { "apiKey": "SG.test-key", "webhookVerificationKey": public } }),
    )
    .await;
    let token = configured["hookToken"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ghk_") && token.len() == 52);
    let again = configure(
        &app,
        &t,
        json!({ "channel": "EMAIL", "provider": "SENDGRID", "enabled": true }),
    )
    .await;
    assert_eq!(again["hookToken"], Value::Null, "the token is shown once");

    let ann = customer(&app, &t, "ann@grid.example", "Ann", None).await;
    let id = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "customerId": ann, "subject": "Harvest",
        "body": "New vintage", "html": "<p>New vintage</p>" }),
    )
    .await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let providers = providers::Providers::new(providers::ProviderSettings {
        sendgrid_base_url: url.clone(),
        ..settings()
    });
    // First a rate limit (retried later), then acceptance.
    script.lock().unwrap().answers.push((
        429,
        vec![],
        r#"{"errors":[{"message":"too many requests"}]}"#.into(),
    ));
    assert_eq!(run(&app, &t, &providers).await, 1);
    let m = message(&app, &t, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("QUEUED"), Some(1)),
        "{m}"
    );
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "UPDATE queue_jobs SET run_at = now() WHERE tenant_id = '{}'",
        t.id
    ))
    .await
    .unwrap();
    assert_eq!(run(&app, &t, &providers).await, 1);
    let m = message(&app, &t, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["providerMessageId"].as_str()),
        (Some("SENT"), Some("sgMsg001")),
        "{m}"
    );
    {
        let s = script.lock().unwrap();
        assert_eq!(s.seen.len(), 2);
        let request = &s.seen[1];
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.path, "/v3/mail/send");
        assert_eq!(request.headers["authorization"], "Bearer SG.test-key");
        assert_eq!(request.headers["content-type"], "application/json");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body,
            json!({
                "personalizations": [{ "to": [{ "email": "ann@grid.example" }] }],
                "from": { "email": "club@grid.example", "name": "Grid Club" },
                "subject": "Harvest",
                "content": [{ "type": "text/plain", "value": "New vintage" }, { "type": "text/html", "value": "<p>New vintage</p>" }],
                "custom_args": { "growthgraph_message_id": id },
            })
        );
    }

    let hook = format!("/hooks/sendgrid/{token}");
    let now = chrono::Utc::now().timestamp();
    let events = format!(
        r#"[{{"email":"ann@grid.example","timestamp":{},"event":"delivered","sg_message_id":"sgMsg001.filterdrecv-1","sg_event_id":"e1","growthgraph_message_id":"{id}"}},{{"email":"ann@grid.example","timestamp":{},"event":"open","sg_message_id":"sgMsg001.filterdrecv-1","sg_event_id":"e2"}}]"#,
        now + 1,
        now + 2
    );
    let (status, _) = post_hook(
        &app,
        &hook,
        &signed_sendgrid(&pair, &events),
        events.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let m = message(&app, &t, &id).await;
    assert_eq!(m["status"], "OPENED", "{m}");
    assert!(m["deliveredAt"].is_string() && m["openedAt"].is_string());

    // A late `delivered` never moves it back; the event stream keeps it.
    let late = format!(
        r#"[{{"email":"ann@grid.example","timestamp":{},"event":"delivered","sg_message_id":"sgMsg001.filterdrecv-1"}}]"#,
        now + 3
    );
    assert_eq!(
        post_hook(
            &app,
            &hook,
            &signed_sendgrid(&pair, &late),
            late.into_bytes()
        )
        .await
        .0,
        200
    );
    assert_eq!(message(&app, &t, &id).await["status"], "OPENED");
    let r = app
        .gql(
            &t.admin_key,
            "query($m: ID) { emailEvents(messageId: $m) { status } }",
            json!({ "m": id }),
        )
        .await;
    assert_eq!(
        r["data"]["emailEvents"],
        json!([{ "status": "sent" }, { "status": "delivered" }, { "status": "opened" }, { "status": "delivered" }])
    );
    assert_eq!(
        event_types(&app, &t, &id).await,
        vec![
            "message.queued",
            "message.sent",
            "message.delivered",
            "message.opened"
        ]
    );

    // Refused, nothing written: a tampered body, no signature, an unknown token, a body
    // that is not SendGrid's, another tenant's token.
    let written = format!(
        "SELECT count(*) AS n FROM email_events WHERE tenant_id = '{}'",
        t.id
    );
    let before = count(&app, &written).await;
    let click = format!(
        r#"[{{"event":"click","timestamp":1733400400,"sg_message_id":"sgMsg001.x","growthgraph_message_id":"{id}"}}]"#
    );
    let headers = signed_sendgrid(&pair, &click);
    let tampered = click.replace("click", "bounce");
    assert_eq!(
        post_hook(&app, &hook, &headers, tampered.into_bytes())
            .await
            .0,
        401
    );
    assert_eq!(
        post_hook(&app, &hook, &headers[..1], click.clone().into_bytes())
            .await
            .0,
        401
    );
    let unknown = format!("/hooks/sendgrid/ghk_{}", "0".repeat(48));
    assert_eq!(
        post_hook(&app, &unknown, &headers, click.clone().into_bytes())
            .await
            .0,
        401
    );
    assert_eq!(
        post_hook(
            &app,
            "/hooks/sendgrid/nope",
            &headers,
            click.clone().into_bytes()
        )
        .await
        .0,
        401
    );
    let malformed = r#"{"event":"click"}"#;
    assert_eq!(
        post_hook(
            &app,
            &hook,
            &signed_sendgrid(&pair, malformed),
            malformed.as_bytes().to_vec()
        )
        .await
        .0,
        400
    );
    assert_eq!(
        post_hook(
            &app,
            &format!("/hooks/twilio/{token}"),
            &headers,
            click.clone().into_bytes()
        )
        .await
        .0,
        401
    );
    let (other_pair, other_public) = sendgrid_key_pair();
    let other_token = configure(
        &app,
        &other,
        json!({ "channel": "EMAIL", "provider": "SENDGRID", "enabled": true,
        "credentials": { "apiKey": "SG.other", "webhookVerificationKey": other_public } }),
    )
    .await["hookToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = post_hook(
        &app,
        &format!("/hooks/sendgrid/{other_token}"),
        &signed_sendgrid(&other_pair, &click),
        click.clone().into_bytes(),
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({ "moved": 0 })),
        "another tenant's hook reaches none of this tenant's messages"
    );
    assert_eq!(count(&app, &written).await, before);
    assert_eq!(message(&app, &t, &id).await["status"], "OPENED");

    // A permanent refusal keeps the provider's message, never the key.
    script.lock().unwrap().answers.push((400, vec![], r#"{"errors":[{"message":"The from address does not match a verified Sender Identity","field":"from"}]}"#.into()));
    let id = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "to": "x@grid.example", "subject": "s", "body": "b" }),
    )
    .await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    run(&app, &t, &providers).await;
    let m = message(&app, &t, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["failureCode"].as_str()),
        (Some("FAILED"), Some("rejected")),
        "{m}"
    );
    assert!(m["errorMessage"]
        .as_str()
        .unwrap()
        .contains("verified Sender Identity"));
    assert!(!m.to_string().contains("SG.test-key"));
}

fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_sends_sms_and_whatsapp_and_its_signed_status_callbacks_are_applied() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Twilio Winery").await;
    let (url, script) = provider((
        201,
        vec![("content-type", "application/json".into())],
        r#"{"sid":"SM0001","status":"queued"}"#.into(),
    ))
    .await;
    let token = configure(&app, &t, json!({ "channel": "SMS", "provider": "TWILIO", "enabled": true, "fromAddress": "+15550000001",
        "credentials": { "accountSid": "AC123", "authToken": "tw-secret" } })).await["hookToken"].as_str().unwrap().to_owned();
    configure(&app, &t, json!({ "channel": "WHATSAPP", "provider": "TWILIO", "enabled": true, "fromAddress": "+15550000002",
        "credentials": { "accountSid": "AC123", "authToken": "tw-secret" } })).await;
    let ann = customer(&app, &t, "ann@tw.example", "Ann", Some("+15551112222")).await;
    let sms = send(&app, &t.admin_key, json!({ "channel": "SMS", "customerId": ann, "body": "Pickup ready", "communicationType": "TRANSACTIONAL" })).await["message"]["id"].as_str().unwrap().to_owned();
    let providers = providers::Providers::new(providers::ProviderSettings {
        twilio_base_url: url.clone(),
        public_url: Some(app.base.clone()),
        ..settings()
    });
    assert_eq!(run(&app, &t, &providers).await, 1);
    script.lock().unwrap().default = Some((201, vec![], r#"{"sid":"SM0002"}"#.into()));
    send(&app, &t.admin_key, json!({ "channel": "WHATSAPP", "customerId": ann, "body": "Hola", "communicationType": "TRANSACTIONAL" })).await;
    assert_eq!(run(&app, &t, &providers).await, 1);
    let hook = format!("{}/hooks/twilio/{token}", app.base);
    {
        let s = script.lock().unwrap();
        let request = &s.seen[0];
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.path, "/2010-04-01/Accounts/AC123/Messages.json");
        let basic = base64::engine::general_purpose::STANDARD.encode("AC123:tw-secret");
        assert_eq!(request.headers["authorization"], format!("Basic {basic}"));
        assert_eq!(
            request.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&request.body).unwrap();
        assert_eq!(
            form,
            vec![
                ("To".to_owned(), "+15551112222".to_owned()),
                ("From".into(), "+15550000001".into()),
                ("Body".into(), "Pickup ready".into()),
                ("StatusCallback".into(), hook.clone()),
            ]
        );
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&s.seen[1].body).unwrap();
        assert_eq!(
            &form[..2],
            &[
                ("To".to_owned(), "whatsapp:+15551112222".to_owned()),
                ("From".into(), "whatsapp:+15550000002".into())
            ]
        );
    }
    let m = message(&app, &t, &sms).await;
    assert_eq!(
        (m["status"].as_str(), m["providerMessageId"].as_str()),
        (Some("SENT"), Some("SM0001"))
    );

    let params = [
        ("MessageSid", "SM0001"),
        ("MessageStatus", "delivered"),
        ("AccountSid", "AC123"),
        ("To", "+15551112222"),
    ];
    let form = serde_urlencoded::to_string(params).unwrap();
    let good = twilio_signature("tw-secret", &hook, &params);
    let path = format!("/hooks/twilio/{token}");
    let form_type = (
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    );
    let bad = twilio_signature("tw-wrong", &hook, &params);
    assert_eq!(
        post_hook(
            &app,
            &path,
            &[form_type.clone(), ("x-twilio-signature", bad)],
            form.clone().into_bytes()
        )
        .await
        .0,
        401
    );
    assert_eq!(message(&app, &t, &sms).await["status"], "SENT");
    let (status, body) = post_hook(
        &app,
        &path,
        &[form_type.clone(), ("x-twilio-signature", good)],
        form.into_bytes(),
    )
    .await;
    assert_eq!((status, body), (200, json!({ "moved": 1 })));
    assert_eq!(message(&app, &t, &sms).await["status"], "DELIVERED");
    // `sent` after `delivered` moves nothing; `undelivered` is final only from earlier.
    let params = [("MessageSid", "SM0001"), ("MessageStatus", "sent")];
    let signature = twilio_signature("tw-secret", &hook, &params);
    let (_, body) = post_hook(
        &app,
        &path,
        &[form_type.clone(), ("x-twilio-signature", signature)],
        serde_urlencoded::to_string(params).unwrap().into_bytes(),
    )
    .await;
    assert_eq!(body, json!({ "moved": 0 }));
    assert_eq!(message(&app, &t, &sms).await["status"], "DELIVERED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_is_one_provider_call_whatever_races_or_crashes() {
    let sink = SmtpSink::start().await;
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Once Winery").await;
    configure(&app, &t, json!({ "channel": "EMAIL", "provider": "SMTP", "enabled": true, "fromAddress": "once@winery.example" })).await;
    // The same idempotency key queues one message; with other input it is refused.
    let input = json!({ "channel": "EMAIL", "to": "ann@once.example", "subject": "Hi", "body": "Once", "idempotencyKey": "welcome-ann" });
    let (a, b) = tokio::join!(
        send(&app, &t.admin_key, input.clone()),
        send(&app, &t.admin_key, input.clone())
    );
    assert_eq!(a["message"]["id"], b["message"]["id"]);
    let mut changed = input.clone();
    changed["body"] = json!("Twice");
    assert_eq!(
        send(&app, &t.admin_key, changed).await["userErrors"][0]["code"],
        "IDEMPOTENCY_KEY_REUSED"
    );
    assert_eq!(count(&app, &format!("SELECT count(*) AS n FROM queue_jobs WHERE tenant_id = '{}' AND job_type = 'message_delivery'", t.id)).await, 1);

    // The runner visits the tenants with due deliveries, and only them.
    let due = growthgraph::jobs::tenants_with_due_jobs(&app.pool, "message_delivery")
        .await
        .unwrap();
    assert_eq!(due, vec![t.id]);

    // Two runners (as on two instances) race for the job: one provider call.
    let providers = providers::Providers::new(providers::ProviderSettings {
        smtp_url: Some(sink.url()),
        ..settings()
    });
    let (x, y) = tokio::join!(run(&app, &t, &providers), run(&app, &t, &providers));
    assert_eq!(x + y, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.received().len(), 1);
    let due = growthgraph::jobs::tenants_with_due_jobs(&app.pool, "message_delivery")
        .await
        .unwrap();
    assert!(due.is_empty());

    // A runner stopped after the provider call and before recording its answer: the job
    // is claimed again after 5 minutes, and the message is not sent a second time.
    let id = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "to": "bob@once.example", "subject": "Hi", "body": "Once" }),
    )
    .await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "UPDATE communication_log SET sending_started_at = now() - interval '6 minutes' WHERE id = '{id}';
         UPDATE queue_jobs SET status = 'processing', started_at = now() - interval '6 minutes', attempts = 1 WHERE payload->>'messageId' = '{id}';"
    )).await.unwrap();
    assert_eq!(run(&app, &t, &providers).await, 1);
    let m = message(&app, &t, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["failureCode"].as_str()),
        (Some("FAILED"), Some("outcome_unknown")),
        "{m}"
    );
    assert_eq!(sink.received().len(), 1);

    // Through Resend, whose Idempotency-Key recognises a repeat, it is sent again safely.
    let (url, script) = provider((200, vec![], r#"{"id":"re_001"}"#.into())).await;
    let r = configure(&app, &t, json!({ "channel": "EMAIL", "provider": "RESEND", "enabled": true, "fromAddress": "once@winery.example",
        "credentials": { "apiKey": "re_key" } })).await;
    assert!(r["hookToken"].is_string());
    conn.batch_execute(&format!("UPDATE channel_configurations SET enabled = false WHERE tenant_id = '{}' AND provider = 'smtp'", t.id)).await.unwrap();
    let id = send(&app, &t.admin_key, json!({ "channel": "EMAIL", "to": "cy@once.example", "subject": "Hi", "body": "Once", "html": "<p>Once</p>" })).await["message"]["id"].as_str().unwrap().to_owned();
    conn.batch_execute(&format!(
        "UPDATE communication_log SET sending_started_at = now() WHERE id = '{id}'"
    ))
    .await
    .unwrap();
    let resend = providers::Providers::new(providers::ProviderSettings {
        resend_base_url: url,
        ..settings()
    });
    assert_eq!(run(&app, &t, &resend).await, 1);
    let m = message(&app, &t, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["providerMessageId"].as_str()),
        (Some("SENT"), Some("re_001")),
        "{m}"
    );
    let s = script.lock().unwrap();
    let request = &s.seen[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/emails")
    );
    assert_eq!(request.headers["authorization"], "Bearer re_key");
    assert_eq!(request.headers["idempotency-key"], id.as_str());
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "from": "once@winery.example", "to": ["cy@once.example"], "subject": "Hi", "text": "Once", "html": "<p>Once</p>",
            "tags": [{ "name": "growthgraph_message_id", "value": id }],
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_messages_and_email_events_stay_within_their_tenant() {
    let app = TestApp::start_with(serve_args()).await;
    let a = app.bare_tenant("Messages A").await;
    let b = app.bare_tenant("Messages B").await;
    let local = providers::Providers::new(providers::ProviderSettings {
        local_delivery: true,
        ..settings()
    });
    let mut made = Vec::new();
    for t in [&a, &b] {
        let r = app.gql(&t.admin_key, SAVE_TEMPLATE, json!({ "i": { "templateType": "WELCOME", "channel": "EMAIL",
            "name": "Welcome", "subject": "Welcome {{ name }}", "textContent": "Hello {{ name }}", "variables": ["name"] } })).await;
        let template = r["data"]["saveCommunicationTemplate"]["template"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = app.gql(&t.admin_key, "mutation($i: SaveEmailTemplateInput!) { saveEmailTemplate(input: $i) { template { id } userErrors { code } } }",
            json!({ "i": { "name": "Intro", "subject": "Hi {{ company }}", "htmlContent": "<p>{{ company }}</p>", "variables": ["company"] } })).await;
        let email_template = r["data"]["saveEmailTemplate"]["template"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let customer = customer(&app, t, &format!("c@{}.example", t.slug), "C", None).await;
        let sent = send(
            &app,
            &t.admin_key,
            json!({ "channel": "EMAIL", "customerId": customer, "templateId": template,
            "variables": { "name": "C" } }),
        )
        .await;
        let message = sent["message"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{sent}"))
            .to_owned();
        let sent = send(
            &app,
            &t.admin_key,
            json!({ "channel": "EMAIL", "to": "p@x.example", "templateId": email_template,
            "variables": { "company": "X" } }),
        )
        .await;
        assert_eq!(sent["userErrors"], json!([]));
        run(&app, t, &local).await;
        made.push((template, email_template, customer, message));
    }
    let (a_template, a_email_template, a_customer, a_message) = made[0].clone();
    assert_eq!(
        app.assert_lists_own_rows("messages", "communication_log", &a, &b)
            .await,
        2
    );
    for (t, own) in [(&a, &made[0]), (&b, &made[1])] {
        let r = app.gql(&t.admin_key, "{ communicationTemplates { id } emailTemplates { id usageCount } emailEvents { messageId } }", json!({})).await;
        assert_eq!(
            r["data"]["communicationTemplates"],
            json!([{ "id": own.0 }])
        );
        assert_eq!(
            r["data"]["emailTemplates"],
            json!([{ "id": own.1, "usageCount": 1 }])
        );
        assert!(r["data"]["emailEvents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["messageId"] != json!(made[if std::ptr::eq(t, &a) { 1 } else { 0 }].3)));
    }
    // B names A's rows: as if they did not exist, nothing written.
    let r = app.gql(&b.admin_key, "query($m: ID!, $t: ID!) { message(id: $m) { id } emailEvents(messageId: $m) { id } previewTemplate(templateId: $t) { rendered { text } userErrors { code } } }",
        json!({ "m": a_message, "t": a_template })).await;
    assert_eq!(r["data"]["message"], Value::Null);
    assert_eq!(r["data"]["emailEvents"], json!([]));
    assert_eq!(
        r["data"]["previewTemplate"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
    let before = app
        .rows_and_events("communication_log", b.id, "message.queued")
        .await;
    for input in [
        json!({ "channel": "EMAIL", "customerId": a_customer, "body": "x" }),
        json!({ "channel": "EMAIL", "to": "x@y.example", "templateId": a_template, "variables": { "name": "x" } }),
        json!({ "channel": "EMAIL", "to": "x@y.example", "templateId": a_email_template, "variables": { "company": "x" } }),
    ] {
        assert_eq!(
            send(&app, &b.admin_key, input).await["userErrors"][0]["code"],
            "NOT_FOUND"
        );
    }
    let r = app
        .gql(
            &b.admin_key,
            SAVE_TEMPLATE,
            json!({ "i": { "id": a_template, "templateType": "WELCOME", "channel": "EMAIL",
        "name": "Stolen", "textContent": "x" } }),
        )
        .await;
    assert_eq!(
        r["data"]["saveCommunicationTemplate"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
    let r = app.gql(&b.admin_key, "mutation($i: SaveEmailTemplateInput!) { saveEmailTemplate(input: $i) { userErrors { code } } }",
        json!({ "i": { "id": a_email_template, "name": "Stolen", "subject": "x", "htmlContent": "x" } })).await;
    assert_eq!(
        r["data"]["saveEmailTemplate"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
    assert_eq!(
        app.rows_and_events("communication_log", b.id, "message.queued")
            .await,
        before
    );
    let r = app.gql(&a.admin_key, "query($t: ID!) { previewTemplate(templateId: $t, variables: { name: \"A\" }) { rendered { text } } }", json!({ "t": a_template })).await;
    assert_eq!(r["data"]["previewTemplate"]["rendered"]["text"], "Hello A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_message_moves_its_recipient_along_the_funnel() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Funnel Winery").await;
    let (pair, public) = sendgrid_key_pair();
    let (url, _script) = provider((
        202,
        vec![("x-message-id", "sgFunnel".into())],
        String::new(),
    ))
    .await;
    let token = configure(&app, &t, json!({ "channel": "EMAIL", "provider": "SENDGRID", "enabled": true,
        "fromAddress": "club@funnel.example", "credentials": { "apiKey": "SG.k", "webhookVerificationKey": public } })).await["hookToken"]
        .as_str().unwrap().to_owned();
    let mut conn = app.owner().await;
    conn.batch_execute(&format!("INSERT INTO customers (tenant_id, email, segment) VALUES ('{}', 'vip@funnel.example', 'vip')", t.id)).await.unwrap();
    let r = app.gql(&t.admin_key, "mutation { createCampaign(input: { name: \"Vintage\", targetSegment: \"vip\" }) { campaign { id } } }", json!({})).await;
    let campaign = r["data"]["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.gql(
        &t.admin_key,
        "mutation($id: ID!) { launchCampaign(input: { id: $id }) { userErrors { code } } }",
        json!({ "id": campaign }),
    )
    .await;
    let funnel = "query($id: ID!) { campaign(id: $id) { metrics { sent delivered opened clicked failed } recipients(first: 5) { nodes { id status customerId } } } }";
    let r = app
        .gql(&t.admin_key, funnel, json!({ "id": campaign }))
        .await;
    let recipient = r["data"]["campaign"]["recipients"]["nodes"][0].clone();
    let (recipient_id, customer_id) = (
        recipient["id"].as_str().unwrap().parse().unwrap(),
        recipient["customerId"].as_str().unwrap().parse().unwrap(),
    );

    // What an automation does for one recipient: deliver in its own transaction.
    let db = TenantDb::new(app.pool.clone(), t.id);
    let outgoing = ops::Outgoing {
        channel: growthgraph::domain::comms::model::Channel::Email,
        customer_id: Some(customer_id),
        to: None,
        content: ops::Content::Written {
            subject: Some("Vintage".into()),
            text: "New vintage".into(),
            html: None,
        },
        communication_type: None,
        idempotency_key: Some(format!("campaign/{recipient_id}/send-1")),
        campaign_recipient_id: Some(recipient_id),
        outreach_email_id: None,
        email_sequence_id: None,
    };
    let id = db
        .run(|conn, scope| {
            use scoped_futures::ScopedFutureExt;
            async move { ops::deliver(conn, scope, outgoing).await }.scope_boxed()
        })
        .await
        .unwrap();
    let providers = providers::Providers::new(providers::ProviderSettings {
        sendgrid_base_url: url,
        ..settings()
    });
    run(&app, &t, &providers).await;
    let r = app
        .gql(&t.admin_key, funnel, json!({ "id": campaign }))
        .await;
    assert_eq!(
        r["data"]["campaign"]["metrics"],
        json!({ "sent": 1, "delivered": 0, "opened": 0, "clicked": 0, "failed": 0 })
    );

    let now = chrono::Utc::now().timestamp();
    let events = format!(
        r#"[{{"event":"delivered","timestamp":{now},"sg_message_id":"sgFunnel.f1","growthgraph_message_id":"{id}"}},{{"event":"click","timestamp":{now},"sg_message_id":"sgFunnel.f1","growthgraph_message_id":"{id}"}},{{"event":"spamreport","timestamp":{now},"sg_message_id":"sgFunnel.f1","growthgraph_message_id":"{id}"}}]"#
    );
    let (status, _) = post_hook(
        &app,
        &format!("/hooks/sendgrid/{token}"),
        &signed_sendgrid(&pair, &events),
        events.into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let r = app
        .gql(&t.admin_key, funnel, json!({ "id": campaign }))
        .await;
    // Reaching clicked counts delivered and opened too; the spam report ends the message
    // and withdraws consent, but takes nothing back from the funnel.
    assert_eq!(
        r["data"]["campaign"]["metrics"],
        json!({ "sent": 1, "delivered": 1, "opened": 1, "clicked": 1, "failed": 0 })
    );
    assert_eq!(
        r["data"]["campaign"]["recipients"]["nodes"][0]["status"],
        "CLICKED"
    );
    assert_eq!(
        message(&app, &t, &id.to_string()).await["status"],
        "COMPLAINED"
    );
    let r = app.gql(&t.admin_key, "query($c: ID) { customer(id: $c) { communicationPreferences { channel type optedIn } } }", json!({ "c": customer_id.to_string() })).await;
    assert_eq!(
        r["data"]["customer"]["communicationPreferences"],
        json!([{ "channel": "EMAIL", "type": "MARKETING", "optedIn": false }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_retry_and_cancel_deliveries_through_their_jobs() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Jobs Winery").await;
    let other = app.bare_tenant("Other Jobs").await;
    let (url, script) =
        provider((202, vec![("x-message-id", "sgRetry".into())], String::new())).await;
    configure(&app, &t, json!({ "channel": "EMAIL", "provider": "SENDGRID", "enabled": true, "fromAddress": "a@jobs.example",
        "credentials": { "apiKey": "SG.jobs" } })).await;
    let providers = providers::Providers::new(providers::ProviderSettings {
        sendgrid_base_url: url,
        ..settings()
    });
    let jobs = "query($s: JobStatus) { jobs(type: \"message_delivery\", status: $s, first: 10) { nodes { id status attempts } } }";
    let act = |name: &'static str| {
        format!("mutation($id: ID!) {{ {name}(input: {{ id: $id }}) {{ job {{ status }} userErrors {{ code }} }} }}")
    };

    // A delivery whose job has one attempt meets a 503: the message fails for good.
    let first = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "to": "x@jobs.example", "subject": "s", "body": "b" }),
    )
    .await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "UPDATE queue_jobs SET max_attempts = 1 WHERE tenant_id = '{}'",
        t.id
    ))
    .await
    .unwrap();
    script
        .lock()
        .unwrap()
        .answers
        .push((503, vec![], "{}".into()));
    run(&app, &t, &providers).await;
    let m = message(&app, &t, &first).await;
    assert_eq!(
        (m["status"].as_str(), m["failureCode"].as_str()),
        (Some("FAILED"), Some("retries_exhausted")),
        "{m}"
    );
    let r = app.gql(&t.admin_key, jobs, json!({ "s": "FAILED" })).await;
    let job = r["data"]["jobs"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another tenant cannot touch it; an analyst may not; a failed job cannot be retried twice over.
    let r = app
        .gql(&other.admin_key, &act("retryJob"), json!({ "id": job }))
        .await;
    assert_eq!(r["data"]["retryJob"]["userErrors"][0]["code"], "NOT_FOUND");
    let analyst = app.key(&t, growthgraph::auth::Role::Analyst).await;
    assert_eq!(
        app.gql(&analyst, &act("retryJob"), json!({ "id": job }))
            .await["errors"][0]["extensions"]["code"],
        "FORBIDDEN"
    );
    let r = app
        .gql(&t.admin_key, &act("retryJob"), json!({ "id": job }))
        .await;
    assert_eq!(
        r["data"]["retryJob"],
        json!({ "job": { "status": "PENDING" }, "userErrors": [] })
    );
    assert_eq!(message(&app, &t, &first).await["status"], "QUEUED");
    let r = app
        .gql(&t.admin_key, &act("retryJob"), json!({ "id": job }))
        .await;
    assert_eq!(
        r["data"]["retryJob"]["userErrors"][0]["code"],
        "INVALID_TRANSITION"
    );
    run(&app, &t, &providers).await;
    assert_eq!(message(&app, &t, &first).await["status"], "SENT");
    let r = app
        .gql(&t.admin_key, &act("cancelJob"), json!({ "id": job }))
        .await;
    assert_eq!(
        r["data"]["cancelJob"]["userErrors"][0]["code"],
        "INVALID_TRANSITION"
    );

    // A queued message cancelled never leaves.
    let second = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "to": "y@jobs.example", "subject": "s", "body": "b" }),
    )
    .await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.gql(&t.admin_key, jobs, json!({ "s": "PENDING" })).await;
    let job = r["data"]["jobs"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .gql(&t.admin_key, &act("cancelJob"), json!({ "id": job }))
        .await;
    assert_eq!(
        r["data"]["cancelJob"],
        json!({ "job": { "status": "CANCELLED" }, "userErrors": [] })
    );
    let seen = script.lock().unwrap().seen.len();
    assert_eq!(run(&app, &t, &providers).await, 0);
    assert_eq!(script.lock().unwrap().seen.len(), seen);
    let m = message(&app, &t, &second).await;
    assert_eq!(
        (m["status"].as_str(), m["failureCode"].as_str()),
        (Some("FAILED"), Some("cancelled"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runners_settle_many_messages_of_the_same_recipients() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Race Winery").await;
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "INSERT INTO customers (tenant_id, email, segment) SELECT '{t}', 'r' || g || '@race.example', 'race' FROM generate_series(1, 20) g",
        t = t.id
    )).await.unwrap();
    let r = app.gql(&t.admin_key, "mutation { createCampaign(input: { name: \"Race\", targetSegment: \"race\" }) { campaign { id } } }", json!({})).await;
    let campaign = r["data"]["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.gql(
        &t.admin_key,
        "mutation($id: ID!) { launchCampaign(input: { id: $id }) { userErrors { code } } }",
        json!({ "id": campaign }),
    )
    .await;
    let r = app.gql(&t.admin_key, "query($id: ID!) { campaign(id: $id) { recipients(first: 50) { nodes { id customerId } } } }", json!({ "id": campaign })).await;
    let db = TenantDb::new(app.pool.clone(), t.id);
    // Two messages per recipient, no channel configured: every one fails, and each failure
    // moves its recipient (and the campaign's counters) in the runners' record phases.
    for node in r["data"]["campaign"]["recipients"]["nodes"]
        .as_array()
        .unwrap()
    {
        for step in ["a", "b"] {
            let outgoing = ops::Outgoing {
                customer_id: Some(node["customerId"].as_str().unwrap().parse().unwrap()),
                campaign_recipient_id: Some(node["id"].as_str().unwrap().parse().unwrap()),
                idempotency_key: Some(format!("race/{}/{step}", node["id"].as_str().unwrap())),
                communication_type: Some(
                    growthgraph::domain::messages::model::CommunicationType::Transactional,
                ),
                ..ops::Outgoing::of_template(
                    growthgraph::domain::comms::model::Channel::Email,
                    uuid::Uuid::nil(),
                    json!({}),
                )
            };
            let outgoing = ops::Outgoing {
                content: ops::Content::Written {
                    subject: Some("s".into()),
                    text: "b".into(),
                    html: None,
                },
                ..outgoing
            };
            db.run(|conn, scope| {
                use scoped_futures::ScopedFutureExt;
                async move { ops::deliver(conn, scope, outgoing).await }.scope_boxed()
            })
            .await
            .unwrap();
        }
    }
    let strict = providers::Providers::new(settings());
    let key = key();
    let runner = || async {
        let mut ran = 0;
        loop {
            let n = ops::run_due(&db, &strict, Some(&key), 3)
                .await
                .expect("no runner fails (no deadlock)");
            ran += n;
            if n == 0 {
                return ran;
            }
        }
    };
    let (a, b, c, d) = tokio::join!(runner(), runner(), runner(), runner());
    assert_eq!(a + b + c + d, 40);
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID!) { campaign(id: $id) { metrics { recipients failed } } }",
            json!({ "id": campaign }),
        )
        .await;
    assert_eq!(
        r["data"]["campaign"]["metrics"],
        json!({ "recipients": 20, "failed": 20 })
    );
    assert_eq!(count(&app, &format!("SELECT count(*) AS n FROM communication_log WHERE tenant_id = '{}' AND failure_code = 'not_configured'", t.id)).await, 40);
}

/// `deliver_many` (what campaign workflows queue through): each message answered in order,
/// the refused ones writing nothing, the same idempotency key one message within a batch,
/// across batches and across racing batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_messages_queues_the_good_ones_and_answers_each() {
    use growthgraph::domain::comms::model::Channel;
    use ops::{Content, Outgoing};
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Batch Winery").await;
    let r = app.gql(&t.admin_key, SAVE_TEMPLATE, json!({ "i": {
        "templateType": "MONTHLY_STATUS", "channel": "EMAIL", "name": "Monthly",
        "subject": "{{ points }} points", "textContent": "You have {{ points }} points", "variables": ["points"] } })).await;
    let template: uuid::Uuid = r["data"]["saveCommunicationTemplate"]["template"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .parse()
        .unwrap();
    let r = app.gql(&t.admin_key, "mutation { upsertCustomer(input: { email: \"ann@batch.example\", name: \"Ann\" }) { customer { id } } }", json!({})).await;
    let ann: uuid::Uuid = r["data"]["upsertCustomer"]["customer"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mail = |key: Option<&str>| Outgoing {
        customer_id: Some(ann),
        idempotency_key: key.map(str::to_owned),
        ..Outgoing::of_template(Channel::Email, template, json!({ "points": 12 }))
    };
    let batch = vec![
        mail(None),
        mail(Some("k1")),
        mail(Some("k1")),
        Outgoing {
            channel: Channel::Phone,
            ..mail(None)
        },
        Outgoing {
            content: Content::Template {
                id: uuid::Uuid::new_v4(),
                variables: json!({}),
            },
            ..mail(None)
        },
        Outgoing {
            to: Some("not an address".into()),
            ..mail(None)
        },
        Outgoing {
            customer_id: Some(uuid::Uuid::new_v4()),
            ..mail(None)
        },
        Outgoing {
            to: Some("+33612345678".into()),
            content: Content::Written {
                subject: None,
                text: " ".into(),
                html: None,
            },
            ..Outgoing::of_template(Channel::Sms, template, json!({}))
        },
        Outgoing {
            channel: Channel::Sms,
            to: Some("+33612345678".into()),
            ..mail(None)
        },
    ];
    let db = TenantDb::new(app.pool.clone(), t.id);
    let deliver = |batch: Vec<Outgoing>| {
        let db = db.clone();
        async move {
            db.run(move |conn, scope| {
                use scoped_futures::ScopedFutureExt;
                async move { ops::deliver_many(conn, scope, batch).await }.scope_boxed()
            })
            .await
            .unwrap()
        }
    };
    let answers = deliver(batch).await;
    let refusal = |i: usize| {
        let e = answers[i].as_ref().unwrap_err();
        (
            format!("{:?}", e.code),
            e.field.clone().unwrap_or_default().join("."),
        )
    };
    let (first, keyed) = (*answers[0].as_ref().unwrap(), *answers[1].as_ref().unwrap());
    assert_ne!(first, keyed);
    assert_eq!(
        answers[2].as_ref().unwrap(),
        &keyed,
        "one message per key within a batch"
    );
    assert_eq!(refusal(3), ("Invalid".into(), "input.channel".into()));
    assert_eq!(refusal(4), ("NotFound".into(), "input.templateId".into()));
    assert_eq!(refusal(5), ("Invalid".into(), "input.to".into()));
    assert_eq!(refusal(6), ("NotFound".into(), "input.customerId".into()));
    assert_eq!(refusal(7), ("Invalid".into(), "input.body".into()));
    assert_eq!(
        refusal(8),
        ("Invalid".into(), "input.templateId".into()),
        "an email template by SMS"
    );
    let tenant = format!("tenant_id = '{}'", t.id);
    let rows = |table: &str, more: &str| {
        let sql = format!("SELECT count(*) AS n FROM {table} WHERE {tenant}{more}");
        let app = &app;
        async move { count(app, &sql).await }
    };
    assert_eq!(rows("communication_log", "").await, 2);
    assert_eq!(
        rows("queue_jobs", " AND job_type = 'message_delivery'").await,
        2
    );
    assert_eq!(
        rows("domain_events", " AND event_type = 'message.queued'").await,
        2
    );
    let subject = count(&app, &format!("SELECT count(*) AS n FROM communication_log WHERE {tenant} AND subject = '12 points' AND recipient = 'ann@batch.example' AND status = 'queued'")).await;
    assert_eq!(subject, 2, "rendered for the customer's address");

    // Racing batches of the same new keys: one message per key.
    let keys = |n: usize| {
        (0..n)
            .map(|i| mail(Some(&format!("race-{i}"))))
            .collect::<Vec<_>>()
    };
    let (a, b) = tokio::join!(deliver(keys(50)), deliver(keys(50)));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.as_ref().unwrap(), y.as_ref().unwrap());
    }
    assert_eq!(rows("communication_log", "").await, 52);
    assert_eq!(
        deliver(vec![mail(Some("k1"))]).await[0].as_ref().unwrap(),
        &keyed
    );
    assert_eq!(rows("queue_jobs", "").await, 52);
}

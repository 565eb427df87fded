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

use crate::common::{count, user_error_code, TestApp, TestTenant};
use crate::comms::SECRET_KEY;

mod provider_apis;
mod sending;
mod tenants_and_jobs;

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

pub(crate) fn serve_args() -> ServeArgs {
    ServeArgs {
        secret_key: Some(SECRET_KEY.parse().unwrap()),
        ..ServeArgs::default()
    }
}

fn key() -> SecretKey {
    SECRET_KEY.parse().unwrap()
}

pub(crate) fn settings() -> providers::ProviderSettings {
    providers::ProviderSettings::default()
}

pub(crate) async fn run(
    app: &TestApp,
    tenant: &TestTenant,
    providers: &providers::Providers,
) -> usize {
    let db = TenantDb::new(app.pool.clone(), tenant.id);
    ops::run_due(&db, providers, Some(&key()), 50)
        .await
        .unwrap()
}

pub(crate) async fn configure(app: &TestApp, t: &TestTenant, input: Value) -> Value {
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

// ---- shared by the tests of several files ------------------------------------------------

const SAVE_TEMPLATE: &str = "mutation($i: SaveCommunicationTemplateInput!) { saveCommunicationTemplate(input: $i) { template { id variables } userErrors { field code message } } }";

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

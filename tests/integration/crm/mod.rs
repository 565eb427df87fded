//! The Shopify connector against a local stand-in of Shopify's Admin GraphQL API (it checks
//! each request as Shopify documents it and keeps customers and their tags as Shopify
//! would), `configureCrm`, and Shopify's signed webhooks.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use growthgraph::auth::Role;
use growthgraph::config::ServeArgs;
use growthgraph::db::TenantDb;
use growthgraph::domain::crm::provider::{Connectors, CrmProvider, CrmSettings};
use growthgraph::jobs;
use growthgraph::secrets::SecretKey;
use serde_json::{json, Value};

use crate::common::{count, error_code, user_error_code, TestApp, TestTenant};
use crate::comms::SECRET_KEY;
use crate::loyalty::{new_customer, stage, stages, ENROLL};

mod commerce7;
mod hooks;
mod sync;

pub(crate) const SHOP: &str = "acme-wines.myshopify.com";
pub(crate) const TOKEN: &str = "shpat_0123456789abcdef";
pub(crate) const WEBHOOK_SECRET: &str = "shpss_webhook_secret";
const PATH: &str = "/acme-wines.myshopify.com/admin/api/2025-01/graphql.json";
const TOKEN_PATH: &str = "/acme-wines.myshopify.com/admin/oauth/access_token";
pub(crate) const CLIENT_ID: &str = "client-acme-1";

#[derive(Debug, Clone)]
pub(crate) struct ShopifyCustomer {
    pub id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub tags: BTreeSet<String>,
}

/// A scripted answer: status, headers, body.
pub(crate) type Answer = (u16, Vec<(&'static str, String)>, Value);

/// What the stand-in holds and how it answers.
#[derive(Default)]
pub(crate) struct Store {
    pub customers: Vec<ShopifyCustomer>,
    /// Operation names of the accepted calls, in order.
    pub operations: Vec<String>,
    /// Requests refused because they were not as Shopify documents them.
    pub malformed: Vec<String>,
    /// Every `n`th call answers HTTP 429 with `Retry-After: 0`.
    pub throttle_every: Option<usize>,
    /// Answers for the next calls, before anything else: (status, headers, body).
    pub scripted: Vec<Answer>,
    pub calls: usize,
    /// With an expiring session: the only access token accepted, and the refresh token
    /// the token endpoint takes (replaced at each use, as Shopify does).
    pub session_token: Option<String>,
    pub refresh_token: String,
    pub refreshes: usize,
    /// The token endpoint's requests, as received.
    pub refresh_requests: Vec<Value>,
}

impl Store {
    pub fn count(&self, operation: &str) -> usize {
        self.operations.iter().filter(|o| *o == operation).count()
    }

    pub fn by_email(&self, email: &str) -> Option<&ShopifyCustomer> {
        self.customers.iter().find(|c| c.email == email)
    }
}

fn cost() -> Value {
    json!({ "cost": { "requestedQueryCost": 10, "actualQueryCost": 10,
        "throttleStatus": { "maximumAvailable": 2000.0, "currentlyAvailable": 1990.0, "restoreRate": 100.0 } } })
}

fn user_errors(field: &str, message: &str) -> Value {
    json!([{ "field": [field], "message": message }])
}

/// Shopify's Admin GraphQL endpoint as the connector uses it.
async fn shopify(
    State(store): State<Arc<Mutex<Store>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let mut s = store.lock().unwrap();
    s.calls += 1;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if method == Method::POST && uri.path() == TOKEN_PATH {
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        s.refresh_requests.push(request.clone());
        let expected = json!({ "client_id": CLIENT_ID, "client_secret": WEBHOOK_SECRET,
            "grant_type": "refresh_token", "refresh_token": s.refresh_token });
        if header("content-type") != "application/json" || request != expected {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": "invalid_grant", "error_description": "The refresh token is invalid or was already used." })),
            )
                .into_response();
        }
        s.refreshes += 1;
        let (access, refresh) = (
            format!("shpat_rotated_{}", s.refreshes),
            format!("shprt_{}", s.refreshes),
        );
        s.session_token = Some(access.clone());
        s.refresh_token = refresh.clone();
        return axum::Json(
            json!({ "access_token": access, "expires_in": 3600, "refresh_token": refresh,
            "refresh_token_expires_in": 7_776_000, "scope": "read_customers,write_customers" }),
        )
        .into_response();
    }
    if method != Method::POST
        || uri.path() != PATH
        || header("content-type") != "application/json"
        || header("accept") != "application/json"
    {
        s.malformed
            .push(format!("{method} {} {headers:?}", uri.path()));
        return (StatusCode::BAD_REQUEST, "not Shopify's endpoint").into_response();
    }
    let accepted = s.session_token.clone().unwrap_or_else(|| TOKEN.to_owned());
    if header("x-shopify-access-token") != accepted {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)" })),
        )
            .into_response();
    }
    if !s.scripted.is_empty() {
        let (status, extra, body) = s.scripted.remove(0);
        let mut response =
            (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        for (name, value) in extra {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        return response;
    }
    if s.throttle_every.is_some_and(|n| s.calls % n == 0) {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({ "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service." })),
        )
            .into_response();
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
        return response;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        s.malformed.push("body is not JSON".into());
        return (StatusCode::BAD_REQUEST, "body is not JSON").into_response();
    };
    let query = request["query"].as_str().unwrap_or("");
    let vars = &request["variables"];
    let operation = query.split(['(', ' ', '{']).nth(1).unwrap_or("").to_owned();
    let data = match operation.as_str() {
        "FindCustomer" => {
            let wanted = vars["query"].as_str().unwrap_or("");
            let email = wanted
                .strip_prefix("email:\"")
                .and_then(|e| e.strip_suffix('"'))
                .unwrap_or("\u{0}");
            let nodes: Vec<Value> = s
                .by_email(email)
                .map(|c| json!({ "id": c.id, "email": c.email }))
                .into_iter()
                .collect();
            json!({ "customers": { "nodes": nodes } })
        }
        "CreateCustomer" | "UpdateCustomer" => {
            let input = &vars["input"];
            let email = input["email"].as_str().unwrap_or("").to_owned();
            let field = if operation == "CreateCustomer" {
                "customerCreate"
            } else {
                "customerUpdate"
            };
            let existing = s.customers.iter().position(|c| c.email == email);
            let id = match (operation.as_str(), existing) {
                ("CreateCustomer", Some(_)) => {
                    let errors = user_errors("email", "Email has already been taken");
                    s.operations.push(operation);
                    return axum::Json(json!({ "data": { field: { "customer": null, "userErrors": errors } }, "extensions": cost() })).into_response();
                }
                ("CreateCustomer", None) => {
                    let id = format!("gid://shopify/Customer/{}", 1000 + s.calls);
                    s.customers.push(ShopifyCustomer {
                        id: id.clone(),
                        email,
                        first_name: input["firstName"].as_str().map(str::to_owned),
                        last_name: input["lastName"].as_str().map(str::to_owned),
                        tags: BTreeSet::new(),
                    });
                    id
                }
                _ => {
                    let Some(c) = s
                        .customers
                        .iter_mut()
                        .find(|c| Some(&c.id) == input["id"].as_str().map(str::to_owned).as_ref())
                    else {
                        let errors = user_errors("id", "Customer does not exist");
                        return axum::Json(json!({ "data": { field: { "customer": null, "userErrors": errors } }, "extensions": cost() })).into_response();
                    };
                    c.first_name = input["firstName"].as_str().map(str::to_owned);
                    c.last_name = input["lastName"].as_str().map(str::to_owned);
                    c.id.clone()
                }
            };
            json!({ field: { "customer": { "id": id }, "userErrors": [] } })
        }
        "AddTags" | "RemoveTags" => {
            let field = if operation == "AddTags" {
                "tagsAdd"
            } else {
                "tagsRemove"
            };
            let id = vars["id"].as_str().unwrap_or("");
            let tags: Vec<String> = vars["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect();
            match s.customers.iter_mut().find(|c| c.id == id) {
                Some(c) => {
                    for tag in tags {
                        if operation == "AddTags" {
                            c.tags.insert(tag);
                        } else {
                            c.tags.remove(&tag);
                        }
                    }
                    json!({ field: { "node": { "id": id }, "userErrors": [] } })
                }
                None => {
                    json!({ field: { "node": null, "userErrors": user_errors("id", "Customer does not exist") } })
                }
            }
        }
        _ => {
            s.malformed.push(format!("unknown operation {query}"));
            return axum::Json(json!({ "errors": [{ "message": "Parse error" }] })).into_response();
        }
    };
    s.operations.push(operation);
    axum::Json(json!({ "data": data, "extensions": cost() })).into_response()
}

/// A stand-in Shopify: its base URL setting (`…/{shop}`) and its store.
pub(crate) async fn shopify_stand_in() -> (String, Arc<Mutex<Store>>) {
    let store = Arc::new(Mutex::new(Store::default()));
    let app = axum::Router::new()
        .fallback(shopify)
        .with_state(store.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/{{shop}}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, store)
}

pub(crate) fn key() -> SecretKey {
    SECRET_KEY.parse().unwrap()
}

pub(crate) fn serve_args() -> ServeArgs {
    ServeArgs {
        secret_key: Some(key()),
        ..ServeArgs::default()
    }
}

pub(crate) fn connectors(app: &TestApp, base_url: &str) -> Connectors {
    Connectors::new(
        app.pool.clone(),
        Some(key()),
        CrmSettings {
            shopify_base_url: base_url.to_owned(),
            ..CrmSettings::default()
        },
    )
}

pub(crate) const CONFIGURE: &str =
    "mutation($input: ConfigureCrmInput!) { configureCrm(input: $input) {
    crmConnection { provider shop enabled } hookToken userErrors { field code message } } }";

pub(crate) async fn configure(app: &TestApp, key: &str, input: Value) -> Value {
    app.gql(key, CONFIGURE, json!({ "input": input })).await
}

pub(crate) fn shopify_input() -> Value {
    json!({ "provider": "SHOPIFY", "shop": SHOP,
        "credentials": { "accessToken": TOKEN, "webhookSecret": WEBHOOK_SECRET } })
}

/// Runs the tenant's due CRM jobs through `crm`.
pub(crate) async fn run(app: &TestApp, t: &TestTenant, crm: &Connectors) -> usize {
    let db = TenantDb::new(app.pool.clone(), t.id);
    jobs::run_due_crm_jobs(&db, crm, 100).await.unwrap()
}

/// Makes every queued job of the tenant due now.
pub(crate) async fn make_due(app: &TestApp, t: &TestTenant) {
    let mut owner = app.owner().await;
    owner
        .batch_execute(&format!(
            "UPDATE queue_jobs SET run_at = now() WHERE tenant_id = '{}' AND status = 'pending'",
            t.id
        ))
        .await
        .unwrap();
}

/// Removes the demo rows' queued jobs and enrollments: the tenant starts with none.
pub(crate) async fn without_demo_enrollments(app: &TestApp, t: &TestTenant) {
    let mut owner = app.owner().await;
    owner
        .batch_execute(&format!(
            "DELETE FROM queue_jobs WHERE tenant_id = '{0}';
             DELETE FROM club_enrollments WHERE tenant_id = '{0}';",
            t.id
        ))
        .await
        .unwrap();
}

#[derive(QueryableByName, Debug)]
pub(crate) struct JobRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub delay_seconds: f64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub error: Option<String>,
}

/// The CRM sync jobs of the tenant, oldest first.
pub(crate) async fn sync_jobs(app: &TestApp, t: &TestTenant) -> Vec<JobRow> {
    let mut owner = app.owner().await;
    diesel::sql_query(format!(
        "SELECT status, attempts, extract(epoch FROM run_at - now())::float8 AS delay_seconds, error
         FROM queue_jobs WHERE tenant_id = '{}' AND job_type = 'crm_sync' ORDER BY created_at, id",
        t.id
    ))
    .load(&mut owner)
    .await
    .unwrap()
}

/// Enrolls a new customer of `t` in `stage_name`: the enrollment's id.
pub(crate) async fn enroll_new(
    app: &TestApp,
    t: &TestTenant,
    email: &str,
    stage_name: &str,
) -> String {
    let stages = stages(app, t).await;
    let customer = new_customer(app, t, email).await;
    let r = app
        .gql(
            &t.admin_key,
            ENROLL,
            json!({ "c": customer, "s": stage(&stages, stage_name) }),
        )
        .await;
    r["data"]["enrollCustomer"]["enrollment"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned()
}

pub(crate) async fn sync_state(app: &TestApp, t: &TestTenant, enrollment: &str) -> Value {
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID!) { enrollment(id: $id) { syncStatus syncError } }",
            json!({ "id": enrollment }),
        )
        .await;
    r["data"]["enrollment"].clone()
}

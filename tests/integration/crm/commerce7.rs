//! The Commerce7 connector against a local stand-in of Commerce7's REST API (basic
//! authentication and the `tenant` header checked, customers searched page by page with a
//! `cursor`, tags added through `tag-x-object` and listed twice when added twice, as
//! Commerce7 does), and Commerce7's webhooks with their basic authentication.

use super::*;
use axum::extract::Query;
use base64::Engine;
use std::collections::HashMap;

const TENANT: &str = "acme-winery";
const APP_ID: &str = "app-growthgraph";
const APP_SECRET: &str = "c7-app-secret";
const HOOK_USER: &str = "c7hook";
const HOOK_PASSWORD: &str = "c7-hook-password";

#[derive(Debug, Clone)]
struct C7Customer {
    id: String,
    emails: Vec<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    /// Tag ids, a tag added twice listed twice.
    tags: Vec<String>,
}

#[derive(Default)]
struct C7 {
    customers: Vec<C7Customer>,
    /// `METHOD path` of every accepted call.
    calls: Vec<String>,
    malformed: Vec<String>,
    scripted: Vec<Answer>,
    /// Customer tags: (id, title).
    tags: Vec<(String, String)>,
}

impl C7 {
    fn count(&self, call: &str) -> usize {
        self.calls.iter().filter(|c| c.starts_with(call)).count()
    }
    fn by_email(&self, email: &str) -> Option<&C7Customer> {
        self.customers
            .iter()
            .find(|c| c.emails.iter().any(|e| e == email))
    }
}

fn c7_json(c: &C7Customer) -> Value {
    json!({
        "id": c.id,
        "firstName": c.first_name,
        "lastName": c.last_name,
        "emails": c.emails.iter().map(|e| json!({ "email": e })).collect::<Vec<_>>(),
        "tags": c.tags.iter().map(|t| json!({ "id": t, "title": t, "objectType": "Customer", "type": "Manual" })).collect::<Vec<_>>(),
    })
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Commerce7's REST API as the connector uses it (two customers per search page, so
/// searches page).
async fn commerce7(
    State(store): State<Arc<Mutex<C7>>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let mut s = store.lock().unwrap();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let json_body = method == Method::POST || method == Method::PUT;
    if header("tenant") != TENANT
        || header("accept") != "application/json"
        || (json_body && header("content-type") != "application/json")
    {
        s.malformed.push(format!("{method} {uri} {headers:?}"));
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "message": "Bad request" })),
        )
            .into_response();
    }
    if header("authorization") != basic(APP_ID, APP_SECRET) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "statusCode": 401, "type": "unauthorized", "message": "Invalid app credentials" }))).into_response();
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
    let path = uri.path().to_owned();
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    let call = format!("{method} /{}", segments[0..segments.len().min(2)].join("/"));
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "message": "Not found" })),
        )
            .into_response()
    };
    let response = match (method.clone(), segments.as_slice()) {
        (Method::GET, ["customer"]) => {
            let q = query.get("q").cloned().unwrap_or_default().to_lowercase();
            let matching: Vec<&C7Customer> = s
                .customers
                .iter()
                .filter(|c| {
                    c.emails.iter().any(|e| {
                        e.contains(&q) || q.contains(e.split('@').nth(1).unwrap_or("\u{0}"))
                    })
                })
                .collect();
            let start = match query.get("cursor").map(String::as_str) {
                Some("start") | None => 0,
                Some(n) => n.parse().unwrap_or(usize::MAX),
            };
            let page: Vec<Value> = matching
                .iter()
                .skip(start)
                .take(2)
                .map(|c| c7_json(c))
                .collect();
            let next = (start + 2 < matching.len()).then(|| (start + 2).to_string());
            axum::Json(json!({ "customers": page, "total": matching.len(), "cursor": next }))
                .into_response()
        }
        (Method::GET, ["customer", id]) => match s.customers.iter().find(|c| c.id == *id) {
            Some(c) => axum::Json(c7_json(c)).into_response(),
            None => not_found(),
        },
        (Method::POST, ["customer"]) => {
            let Some(email) = request["emails"][0]["email"].as_str() else {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({ "message": "emails is required" })),
                )
                    .into_response();
            };
            if s.by_email(email).is_some() {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({ "message": "Email already exists" })),
                )
                    .into_response();
            }
            let c = C7Customer {
                id: uuid::Uuid::new_v4().to_string(),
                emails: vec![email.to_owned()],
                first_name: request["firstName"].as_str().map(str::to_owned),
                last_name: request["lastName"].as_str().map(str::to_owned),
                tags: vec![],
            };
            let answer = c7_json(&c);
            s.customers.push(c);
            (StatusCode::OK, axum::Json(answer)).into_response()
        }
        (Method::PUT, ["customer", id]) => match s.customers.iter_mut().find(|c| c.id == *id) {
            Some(c) => {
                c.first_name = request["firstName"].as_str().map(str::to_owned);
                c.last_name = request["lastName"].as_str().map(str::to_owned);
                axum::Json(c7_json(c)).into_response()
            }
            None => not_found(),
        },
        (Method::GET, ["tag", "customer"]) => {
            let q = query.get("q").cloned().unwrap_or_default();
            let found: Vec<Value> = s
                .tags
                .iter()
                .filter(|(_, title)| title.contains(&q))
                .map(|(id, title)| json!({ "id": id, "title": title, "type": "Manual", "objectType": "Customer" }))
                .collect();
            axum::Json(json!({ "tags": found, "total": found.len() })).into_response()
        }
        (Method::POST, ["tag", "customer"]) => {
            let (Some(title), Some("Manual")) =
                (request["title"].as_str(), request["type"].as_str())
            else {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({ "message": "title and type are required" })),
                )
                    .into_response();
            };
            let id = uuid::Uuid::new_v4().to_string();
            s.tags.push((id.clone(), title.to_owned()));
            axum::Json(
                json!({ "id": id, "title": title, "type": "Manual", "objectType": "Customer" }),
            )
            .into_response()
        }
        (Method::POST, ["tag-x-object", "customer"]) => {
            let (Some(object), Some(tag)) =
                (request["objectId"].as_str(), request["tagId"].as_str())
            else {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({ "message": "objectId and tagId are required" })),
                )
                    .into_response();
            };
            match s.customers.iter_mut().find(|c| c.id == object) {
                Some(c) => {
                    c.tags.push(tag.to_owned());
                    (
                        StatusCode::CREATED,
                        axum::Json(
                            json!({ "id": uuid::Uuid::new_v4(), "objectId": object, "tagId": tag }),
                        ),
                    )
                        .into_response()
                }
                None => not_found(),
            }
        }
        (Method::DELETE, ["tag-x-object", "customer", tag, customer]) => {
            match s.customers.iter_mut().find(|c| c.id == *customer) {
                Some(c) => {
                    c.tags.retain(|t| t != tag);
                    StatusCode::NO_CONTENT.into_response()
                }
                None => not_found(),
            }
        }
        _ => {
            s.malformed.push(format!("{method} {uri}"));
            return not_found();
        }
    };
    s.calls.push(call);
    response
}

async fn commerce7_stand_in() -> (String, Arc<Mutex<C7>>) {
    let store = Arc::new(Mutex::new(C7::default()));
    let app = axum::Router::new()
        .fallback(commerce7)
        .with_state(store.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, store)
}

fn c7_connectors(app: &TestApp, base_url: &str) -> Connectors {
    Connectors::new(
        app.pool.clone(),
        Some(key()),
        CrmSettings {
            commerce7_base_url: base_url.to_owned(),
            ..CrmSettings::default()
        },
    )
}

fn c7_input() -> Value {
    json!({ "provider": "COMMERCE7", "shop": TENANT, "credentials": {
        "appId": APP_ID, "appSecret": APP_SECRET, "webhookUsername": HOOK_USER, "webhookPassword": HOOK_PASSWORD } })
}

fn person(id: &str, email: &str) -> C7Customer {
    C7Customer {
        id: id.to_owned(),
        emails: vec![email.to_owned()],
        first_name: None,
        last_name: None,
        tags: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollments_reach_commerce7_customers_as_tags_found_across_search_pages() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.tenant("Cellar Winery").await;
    without_demo_enrollments(&app, &t).await;
    let (url, store) = commerce7_stand_in().await;
    let crm = c7_connectors(&app, &url);

    // Refused, nothing written.
    for (input, field) in [
        (
            json!({ "provider": "COMMERCE7", "shop": "Acme Winery!", "credentials": { "appId": APP_ID, "appSecret": APP_SECRET } }),
            "shop",
        ),
        (
            json!({ "provider": "COMMERCE7", "shop": TENANT, "credentials": { "appId": APP_ID } }),
            "credentials",
        ),
        (
            json!({ "provider": "COMMERCE7", "shop": TENANT, "credentials": { "appId": APP_ID, "appSecret": APP_SECRET, "webhookPassword": 7 } }),
            "credentials",
        ),
    ] {
        let r = configure(&app, &t.admin_key, input.clone()).await;
        assert_eq!(
            r["data"]["configureCrm"]["userErrors"][0]["field"],
            json!(["input", field]),
            "{input} → {r}"
        );
    }
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM crm_connections").await,
        0
    );
    let r = configure(&app, &t.admin_key, c7_input()).await;
    assert_eq!(
        r["data"]["configureCrm"]["crmConnection"],
        json!({ "provider": "COMMERCE7", "shop": TENANT, "enabled": true }),
        "{r}"
    );

    // Commerce7 already knows one customer, behind three others of the same domain: the
    // search is read page by page until the email itself is found.
    {
        let mut s = store.lock().unwrap();
        for i in 0..3 {
            s.customers.push(person(
                &uuid::Uuid::new_v4().to_string(),
                &format!("other{i}@cellar.example"),
            ));
        }
        s.customers.push(person(
            "5b0e6b0e-1111-4222-8333-944444444444",
            "known@cellar.example",
        ));
    }
    let known = enroll_new(&app, &t, "known@cellar.example", "Bronze").await;
    let fresh = enroll_new(&app, &t, "fresh@cellar.example", "Bronze").await;
    assert_eq!(run(&app, &t, &crm).await, 2);
    {
        let s = store.lock().unwrap();
        assert_eq!(s.malformed, Vec::<String>::new());
        assert!(s.count("GET /customer") >= 2 + 2, "{:?}", s.calls);
        assert_eq!(s.count("PUT /customer"), 1, "{:?}", s.calls);
        assert_eq!(s.count("POST /customer"), 1, "{:?}", s.calls);
        assert_eq!(
            s.by_email("known@cellar.example").unwrap().tags,
            vec!["D-1"]
        );
        let f = s.by_email("fresh@cellar.example").unwrap();
        assert_eq!(
            (f.tags.clone(), f.first_name.as_deref()),
            (vec!["D-1".to_owned()], Some("Test"))
        );
    }
    for e in [&known, &fresh] {
        assert_eq!(
            sync_state(&app, &t, e).await,
            json!({ "syncStatus": "SYNCED", "syncError": null })
        );
    }

    // The same sync again (a retry after a lost answer) adds nothing twice.
    retry(&app, &t, &fresh).await;
    run(&app, &t, &crm).await;
    assert_eq!(
        store
            .lock()
            .unwrap()
            .by_email("fresh@cellar.example")
            .unwrap()
            .tags,
        vec!["D-1"]
    );

    // Cancelled: the tag is removed, with the kept id (no search).
    let before = store.lock().unwrap().count("GET /customer?");
    let r = app.gql(&t.admin_key, "mutation($e: ID!) { cancelEnrollment(input: { enrollmentId: $e }) { userErrors { code } } }", json!({ "e": known })).await;
    assert_eq!(
        r["data"]["cancelEnrollment"]["userErrors"],
        json!([]),
        "{r}"
    );
    run(&app, &t, &crm).await;
    {
        let s = store.lock().unwrap();
        assert_eq!(
            s.by_email("known@cellar.example").unwrap().tags,
            Vec::<String>::new()
        );
        assert_eq!(s.count("DELETE /tag-x-object"), 1, "{:?}", s.calls);
        assert_eq!(s.count("GET /customer?"), before, "{:?}", s.calls);
    }

    // Rate limited: waits, attempts unspent; wrong app credentials: failed with the message.
    let third = enroll_new(&app, &t, "third@cellar.example", "Bronze").await;
    store.lock().unwrap().scripted.push((
        429,
        vec![("retry-after", "9".into())],
        json!({ "message": "Too many requests" }),
    ));
    assert_eq!(run(&app, &t, &crm).await, 0);
    let job = sync_jobs(&app, &t)
        .await
        .into_iter()
        .find(|j| j.status == "pending")
        .unwrap();
    assert_eq!(job.attempts, 0, "{job:?}");
    assert!((7.0..=9.5).contains(&job.delay_seconds), "{job:?}");
    make_due(&app, &t).await;
    configure(&app, &t.admin_key, json!({ "provider": "COMMERCE7", "shop": TENANT, "credentials": { "appId": APP_ID, "appSecret": "wrong" } })).await;
    let crm = c7_connectors(&app, &url);
    run(&app, &t, &crm).await;
    let state = sync_state(&app, &t, &third).await;
    assert_eq!(state["syncStatus"], "FAILED", "{state}");
    let error = state["syncError"].as_str().unwrap();
    assert!(
        error.contains("401") && error.contains("Invalid app credentials"),
        "{error}"
    );
    assert!(
        !error.contains("wrong") && !error.contains(APP_SECRET),
        "{error}"
    );
}

async fn retry(app: &TestApp, t: &TestTenant, enrollment: &str) {
    let r = app
        .gql(
            &t.admin_key,
            "mutation($e: ID!) { retryCrmSync(input: { enrollmentId: $e }) { userErrors { code } } }",
            json!({ "e": enrollment }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
}

async fn c7_deliver(app: &TestApp, token: &str, authorization: &str, body: &Value) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/hooks/crm/commerce7/{token}", app.base))
        .header("content-type", "application/json")
        .header("authorization", authorization)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commerce7_webhooks_need_their_basic_authentication_and_apply_each_change_once() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.tenant("Hook Cellar").await;
    let r = configure(&app, &t.admin_key, c7_input()).await;
    let token = r["data"]["configureCrm"]["hookToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let auth = basic(HOOK_USER, HOOK_PASSWORD);
    let order = json!({ "object": "Order", "action": "Create", "tenantId": TENANT, "payload": {
        "id": "0f464186-4985-4737-bcc5-f5c33be0a591", "orderNumber": 1042, "orderSubmittedDate": "2026-11-30T15:00:00.000Z",
        "updatedAt": "2026-11-30T15:00:01.000Z", "subTotal": 9000, "total": 9750, "orderType": "Club",
        "customer": { "id": "d23cb84a-31c7-4a94-83c6-c6086fc48984", "firstName": "Inês", "lastName": "Moura",
            "emails": [{ "email": "ines@cellar.example" }] },
        "items": [{ "productTitle": "Alvarinho 2023", "sku": "ALV-23", "quantity": 2, "price": 4500 }] } });
    let orders = format!("SELECT count(*) AS n FROM orders WHERE tenant_id = '{}' AND crm_order_id = '0f464186-4985-4737-bcc5-f5c33be0a591'", t.id);

    // Wrong or missing authentication, or the Shopify path with this token: 401, nothing written.
    for authorization in ["", "Basic Zm9vOmJhcg==", &basic(HOOK_USER, "guess")] {
        let (status, _) = c7_deliver(&app, &token, authorization, &order).await;
        assert_eq!(status, 401, "{authorization}");
    }
    let wrong_path = app
        .client
        .post(format!("{}/hooks/crm/shopify/{token}", app.base))
        .body(order.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_path.status().as_u16(), 401);
    let (status, _) = c7_deliver(
        &app,
        &token,
        &auth,
        &json!({ "object": "Order", "action": "Create", "payload": {} }),
    )
    .await;
    assert_eq!(status, 422, "a payload without an id is refused");
    assert_eq!(count(&app, &orders).await, 0);

    // The order, delivered twice: recorded once, amounts from cents, a club shipment.
    for expected in ["applied", "duplicate"] {
        let (status, answer) = c7_deliver(&app, &token, &auth, &order).await;
        assert_eq!(
            (status, answer["result"].as_str()),
            (200, Some(expected)),
            "{answer}"
        );
    }
    assert_eq!(count(&app, &orders).await, 1);
    let matching = format!(
        "SELECT count(*) AS n FROM orders o JOIN customers c ON c.id = o.customer_id
         WHERE o.tenant_id = '{}' AND o.order_total = 97.50 AND o.subtotal = 90.00 AND o.order_number = '1042'
           AND o.is_club_shipment AND c.email = 'ines@cellar.example' AND c.name = 'Inês Moura'
           AND c.crm_customer_id = 'd23cb84a-31c7-4a94-83c6-c6086fc48984' AND o.line_items->0->>'price' = '45'",
        t.id
    );
    assert_eq!(count(&app, &matching).await, 1);

    // A later change of the customer is applied; its repeat is not.
    let update = json!({ "object": "Customer", "action": "Update", "tenantId": TENANT, "payload": {
        "id": "d23cb84a-31c7-4a94-83c6-c6086fc48984", "updatedAt": "2026-12-01T09:00:00.000Z", "firstName": "Inês",
        "lastName": "Moura Costa", "emails": [{ "email": "ines@cellar.example" }], "phones": [{ "phone": "+351912345678" }] } });
    for expected in ["applied", "duplicate"] {
        let (status, answer) = c7_deliver(&app, &token, &auth, &update).await;
        assert_eq!(
            (status, answer["result"].as_str()),
            (200, Some(expected)),
            "{answer}"
        );
    }
    assert_eq!(
        count(&app, &format!("SELECT count(*) AS n FROM customers WHERE tenant_id = '{}' AND name = 'Inês Moura Costa' AND phone = '+351912345678'", t.id)).await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_without_a_crm_discount_gets_its_commerce7_tag_made_once_by_its_first_sync() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.tenant("Tagless Cellar").await;
    without_demo_enrollments(&app, &t).await;
    let (url, store) = commerce7_stand_in().await;
    let crm = c7_connectors(&app, &url);
    configure(&app, &t.admin_key, c7_input()).await;
    let mut owner = app.owner().await;
    owner
        .batch_execute(&format!("UPDATE club_stages SET crm_discount_id = NULL, sync_status = 'pending' WHERE tenant_id = '{}'", t.id))
        .await
        .unwrap();
    store.lock().unwrap().tags.push((
        uuid::Uuid::new_v4().to_string(),
        "Club Bronze Reserve".into(),
    ));
    let a = enroll_new(&app, &t, "a@tagless.example", "Bronze").await;
    let b = enroll_new(&app, &t, "b@tagless.example", "Bronze").await;
    assert_eq!(run(&app, &t, &crm).await, 2);
    let (tag, members) = {
        let s = store.lock().unwrap();
        assert_eq!(s.count("POST /tag/customer"), 1, "{:?}", s.calls);
        let (id, title) = s
            .tags
            .iter()
            .find(|(_, title)| title == "Club Bronze")
            .unwrap()
            .clone();
        assert_eq!(title, "Club Bronze");
        let members: Vec<Vec<String>> = ["a@tagless.example", "b@tagless.example"]
            .iter()
            .map(|e| s.by_email(e).unwrap().tags.clone())
            .collect();
        (id, members)
    };
    assert_eq!(members, vec![vec![tag.clone()], vec![tag.clone()]]);
    for e in [&a, &b] {
        assert_eq!(sync_state(&app, &t, e).await["syncStatus"], "SYNCED");
    }
    let program = app
        .gql(
            &t.admin_key,
            "{ clubProgram { stages { name crmDiscountId syncStatus } } }",
            json!({}),
        )
        .await;
    let bronze = program["data"]["clubProgram"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Bronze")
        .unwrap()
        .clone();
    assert_eq!(
        bronze,
        json!({ "name": "Bronze", "crmDiscountId": tag, "syncStatus": "SYNCED" })
    );
}

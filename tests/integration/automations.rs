//! Growth automations: email sequences and demo sessions (the tenant's rows newest first,
//! paged without gaps or repeats), and the testimonial widget's settings (admins only),
//! read and configured.

use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::RunQueryDsl;
use growthgraph::auth::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{error_code, TestApp, TestTenant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_sequences_and_demo_sessions_list_only_the_tenants_rows_newest_first() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    // More rows for A, each batch created at one instant: ties are ordered by id.
    app.insert_for(
        &a,
        "INSERT INTO email_sequences (tenant_id, recipient_email, segment, status, created_at) \
         SELECT $1, 'seq' || g || '@example.com', 'frozen_starter', \
                (ARRAY['active', 'paused', 'active'])[g], now() - interval '1 day' \
         FROM generate_series(1, 3) g",
    )
    .await;
    app.insert_for(
        &a,
        "INSERT INTO demo_sessions (tenant_id, session_token, created_at) \
         SELECT $1, 'test-token-' || $1 || '-' || g, now() - interval '1 day' \
         FROM generate_series(1, 3) g",
    )
    .await;
    for (field, table) in [
        ("emailSequences", "email_sequences"),
        ("demoSessions", "demo_sessions"),
    ] {
        let rows = app.assert_lists_own_rows(field, table, &a, &b).await;
        assert!(rows >= 3, "{table}");
    }
    for (status, sql) in [("ACTIVE", "active"), ("PAUSED", "paused")] {
        assert_eq!(
            app.page_ids(
                &a.admin_key,
                "emailSequences",
                &format!(", status: {status}")
            )
            .await,
            app.ids_by_sql("email_sequences", &a, Some(("status", sql)))
                .await,
            "emailSequences with status {status}"
        );
    }
    let r = app
        .gql(
            &a.admin_key,
            "{ emailSequences(first: 101) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let r = app
        .gql(
            &a.admin_key,
            "{ demoSessions(after: \"nope\") { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_config_is_the_tenants_and_its_key_for_admins_only() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    #[derive(diesel::QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::Text)]
        api_key: String,
    }
    let mut owner = app.owner().await;
    let want = diesel::sql_query("SELECT api_key FROM widget_configs WHERE tenant_id = $1")
        .bind::<SqlUuid, _>(a.id)
        .get_result::<Key>(&mut owner)
        .await
        .unwrap()
        .api_key;
    const CONFIG: &str =
        "{ widgetConfig { apiKey theme allowedDomains maxTestimonials isActive } }";
    let r = app.gql(&a.admin_key, CONFIG, json!({})).await;
    assert_eq!(r["data"]["widgetConfig"]["apiKey"], want.as_str(), "{r}");
    let r = app.gql(&b.admin_key, CONFIG, json!({})).await;
    assert_ne!(r["data"]["widgetConfig"]["apiKey"], want.as_str(), "{r}");
    // Analysts and partners read the settings, without the key.
    let admin_view = app.gql(&a.admin_key, CONFIG, json!({})).await;
    for role in [Role::Analyst, Role::Partner] {
        let key = app.key(&a, role).await;
        let r = app.gql(&key, CONFIG, json!({})).await;
        assert!(r["errors"].is_null(), "{role:?}: {r}");
        assert!(
            r["data"]["widgetConfig"]["apiKey"].is_null(),
            "{role:?}: {r}"
        );
        let mut expected = admin_view["data"]["widgetConfig"].clone();
        expected["apiKey"] = Value::Null;
        assert_eq!(r["data"]["widgetConfig"], expected, "{role:?}");
        let r = app
            .gql(
                &key,
                "mutation { configureWidget(input: {}) { userErrors { code } } }",
                json!({}),
            )
            .await;
        assert_eq!(error_code(&r), Some("FORBIDDEN"), "{role:?}: {r}");
    }
    let bare = app.bare_tenant("No widget").await;
    let r = app.gql(&bare.admin_key, CONFIG, json!({})).await;
    assert!(r["data"]["widgetConfig"].is_null(), "{r}");
    assert!(r["errors"].is_null(), "{r}");
}

const CONFIGURE: &str = "mutation($input: ConfigureWidgetInput!) { configureWidget(input: $input) {
    widgetConfig { apiKey theme allowedDomains maxTestimonials isActive }
    userErrors { field code message } } }";
const TESTIMONIALS: &str = "{ publishedTestimonials(first: 5) { nodes { id } } }";

/// `tenant`'s widget (at most one) and its `widget.configured` events.
async fn widget_rows(app: &TestApp, tenant: Uuid) -> (Vec<String>, i64) {
    app.rows_and_events("widget_configs", tenant, "widget.configured")
        .await
}

/// `tenant`'s email sequences and their `email_sequence.changed` events.
async fn sequence_rows(app: &TestApp, tenant: Uuid) -> (Vec<String>, i64) {
    app.rows_and_events("email_sequences", tenant, "email_sequence.changed")
        .await
}

/// The widget's settings a `configureWidget` answer holds, after checking it has no
/// error.
fn configured(r: &Value) -> &Value {
    let config = &r["data"]["configureWidget"]["widgetConfig"];
    assert!(config.is_object(), "{r}");
    assert_eq!(r["data"]["configureWidget"]["userErrors"], json!([]), "{r}");
    config
}

/// Whether `key` may read the published testimonials (a working widget key).
async fn widget_key_works(app: &TestApp, key: &str) -> bool {
    let (status, body) = app.post(Some(key), json!({ "query": TESTIMONIALS })).await;
    match status {
        200 => body["errors"].is_null(),
        401 => false,
        other => panic!("{other}: {body}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_widget_creates_the_widget_then_changes_only_what_it_is_given() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Widgetless").await;
    let other = app.tenant("Winery B").await;
    let others_widget = widget_rows(&app, other.id).await;

    let r = app
        .gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "allowedDomains": ["shop.example.com", "*.example.org"] } }),
        )
        .await;
    let created = configured(&r).clone();
    let key = created["apiKey"].as_str().unwrap().to_owned();
    assert!(key.starts_with("wgt_") && key.len() == 52, "{key}");
    assert_eq!(
        created,
        json!({ "apiKey": key, "theme": { "primaryColor": "#7c3aed", "layout": "carousel" },
                "allowedDomains": ["shop.example.com", "*.example.org"],
                "maxTestimonials": 10, "isActive": true })
    );
    assert!(widget_key_works(&app, &key).await);

    // Only what is given changes.
    let input = json!({ "maxTestimonials": 5, "theme": { "layout": "grid" } });
    let r = app
        .gql(&t.admin_key, CONFIGURE, json!({ "input": input }))
        .await;
    assert_eq!(
        configured(&r),
        &json!({ "apiKey": key, "theme": { "layout": "grid" },
                 "allowedDomains": ["shop.example.com", "*.example.org"],
                 "maxTestimonials": 5, "isActive": true })
    );
    let read = app
        .gql(
            &t.admin_key,
            "{ widgetConfig { apiKey maxTestimonials } }",
            json!({}),
        )
        .await;
    assert_eq!(
        read["data"]["widgetConfig"],
        json!({ "apiKey": key, "maxTestimonials": 5 })
    );

    // A new key: the old one stops working at once.
    let r = app
        .gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "rotateKey": true } }),
        )
        .await;
    let rotated = configured(&r)["apiKey"].as_str().unwrap().to_owned();
    assert!(rotated != key && rotated.starts_with("wgt_"));
    assert_eq!(configured(&r)["maxTestimonials"], 5);
    assert!(!widget_key_works(&app, &key).await);
    assert!(widget_key_works(&app, &rotated).await);

    // Switched off: its key no longer works; back on, it does.
    let r = app
        .gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "isActive": false } }),
        )
        .await;
    assert_eq!(configured(&r)["isActive"], false);
    assert!(!widget_key_works(&app, &rotated).await);
    let r = app
        .gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "isActive": true } }),
        )
        .await;
    assert_eq!(configured(&r)["apiKey"], rotated.as_str());
    assert!(widget_key_works(&app, &rotated).await);

    // Each change is an event; the other tenant's widget is untouched.
    let (widgets, events) = widget_rows(&app, t.id).await;
    assert_eq!((widgets.len(), events), (1, 5));
    assert_eq!(widget_rows(&app, other.id).await, others_widget);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_widget_refuses_bad_settings_and_non_admins_and_writes_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let bare = app.bare_tenant("Widgetless").await;
    let before = widget_rows(&app, t.id).await;
    assert_eq!(before.0.len(), 1);
    let many: Vec<String> = (0..51).map(|i| format!("d{i}.example.com")).collect();
    let huge = "x".repeat(9000);
    for (input, field) in [
        (json!({ "maxTestimonials": 0 }), "maxTestimonials"),
        (json!({ "maxTestimonials": 101 }), "maxTestimonials"),
        (
            json!({ "allowedDomains": ["https://example.com"] }),
            "allowedDomains",
        ),
        (
            json!({ "allowedDomains": ["example.com", "bad domain"] }),
            "allowedDomains",
        ),
        (json!({ "allowedDomains": many }), "allowedDomains"),
        (json!({ "theme": "dark" }), "theme"),
        (json!({ "theme": ["dark"] }), "theme"),
        (json!({ "theme": { "css": huge } }), "theme"),
        (
            json!({ "theme": { "layout": "grid" }, "maxTestimonials": -1, "rotateKey": true }),
            "maxTestimonials",
        ),
    ] {
        for tenant in [&t, &bare] {
            let r = app
                .gql(&tenant.admin_key, CONFIGURE, json!({ "input": input }))
                .await;
            assert!(
                r["data"]["configureWidget"]["widgetConfig"].is_null(),
                "{r}"
            );
            assert_eq!(
                r["data"]["configureWidget"]["userErrors"][0]["field"],
                json!(["input", field]),
                "{input}: {r}"
            );
            assert_eq!(
                r["data"]["configureWidget"]["userErrors"][0]["code"],
                "INVALID"
            );
        }
    }
    // Not a setting: refused before anything runs.
    let r = app
        .gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "maxTestimonials": "ten" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    for role in [Role::Analyst, Role::Partner] {
        let key = app.key(&t, role).await;
        let r = app
            .gql(&key, CONFIGURE, json!({ "input": { "rotateKey": true } }))
            .await;
        assert_eq!(error_code(&r), Some("FORBIDDEN"), "{role:?}: {r}");
    }
    assert_eq!(widget_rows(&app, t.id).await, before, "nothing written");
    assert_eq!(before.1, 0);
    assert_eq!(widget_rows(&app, bare.id).await, (vec![], 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_configurations_create_one_widget_and_rotations_leave_one_working_key() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Widgetless").await;
    let answers = futures_util::future::join_all((1..=8).map(|n| {
        app.gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "maxTestimonials": n } }),
        )
    }))
    .await;
    let keys: std::collections::BTreeSet<&str> = answers
        .iter()
        .map(|r| configured(r)["apiKey"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 1, "one widget, one key: {keys:?}");
    let (widgets, events) = widget_rows(&app, t.id).await;
    assert_eq!((widgets.len(), events), (1, 8));
    let read = app
        .gql(
            &t.admin_key,
            "{ widgetConfig { maxTestimonials } }",
            json!({}),
        )
        .await;
    let last = read["data"]["widgetConfig"]["maxTestimonials"]
        .as_i64()
        .unwrap();
    assert!((1..=8).contains(&last), "{read}");

    let answers = futures_util::future::join_all((0..6).map(|_| {
        app.gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "rotateKey": true } }),
        )
    }))
    .await;
    let rotated: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|r| configured(r)["apiKey"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rotated.len(), 6, "each rotation its own key");
    let read = app
        .gql(&t.admin_key, "{ widgetConfig { apiKey } }", json!({}))
        .await;
    let current = read["data"]["widgetConfig"]["apiKey"].as_str().unwrap();
    assert!(rotated.contains(current));
    for key in rotated
        .iter()
        .chain(&keys.iter().map(|k| k.to_string()).collect::<Vec<_>>())
    {
        assert_eq!(widget_key_works(&app, key).await, key == current, "{key}");
    }
}

const START: &str =
    "mutation($input: StartEmailSequenceInput!) { startEmailSequence(input: $input) {
    emailSequence { id recipientEmail segment status currentStep nextSendAt contactId }
    userErrors { field code message } } }";

/// `pause`, `resume` or `cancel` of the sequence `id`: its answer.
async fn change_sequence(app: &TestApp, key: &str, change: &str, id: &str) -> Value {
    let query = format!(
        "mutation($id: ID!) {{ {change}EmailSequence(input: {{ id: $id }}) {{
            emailSequence {{ id status nextSendAt }} userErrors {{ field code }} }} }}"
    );
    app.gql(key, &query, json!({ "id": id })).await["data"][format!("{change}EmailSequence")]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_sequences_start_pause_resume_and_cancel_once_each_way() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Sequences").await;
    let partner = app.key(&t, Role::Partner).await;
    let r = app
        .gql(
            &partner,
            START,
            json!({ "input": { "recipientEmail": " Frozen@Example.com ", "segment": "FROZEN_STARTER" } }),
        )
        .await;
    let started = r["data"]["startEmailSequence"]["emailSequence"].clone();
    assert_eq!(
        r["data"]["startEmailSequence"]["userErrors"],
        json!([]),
        "{r}"
    );
    assert_eq!(
        (
            &started["recipientEmail"],
            &started["segment"],
            &started["status"],
            &started["currentStep"]
        ),
        (
            &json!("frozen@example.com"),
            &json!("FROZEN_STARTER"),
            &json!("ACTIVE"),
            &json!(0)
        )
    );
    assert!(started["nextSendAt"].is_string(), "the first step is due");
    let id = started["id"].as_str().unwrap().to_owned();

    let paused = change_sequence(&app, &t.admin_key, "pause", &id).await;
    assert_eq!(paused["emailSequence"]["status"], "PAUSED", "{paused}");
    assert!(paused["emailSequence"]["nextSendAt"].is_null());
    // Listed by status.
    let listed = app
        .page_ids(&t.admin_key, "emailSequences", ", status: PAUSED")
        .await;
    assert_eq!(listed, vec![id.clone()]);
    let resumed = change_sequence(&app, &t.admin_key, "resume", &id).await;
    assert_eq!(resumed["emailSequence"]["status"], "ACTIVE", "{resumed}");
    assert!(resumed["emailSequence"]["nextSendAt"].is_string());
    // Open: a second one for the same recipient and segment is a conflict (any case of
    // the address); another segment is not.
    let again =
        json!({ "input": { "recipientEmail": "FROZEN@example.com", "segment": "FROZEN_STARTER" } });
    let r = app.gql(&partner, START, again.clone()).await;
    assert_eq!(
        r["data"]["startEmailSequence"]["userErrors"][0]["code"], "CONFLICT",
        "{r}"
    );
    let other_segment =
        json!({ "input": { "recipientEmail": "frozen@example.com", "segment": "FREE_MAXIMIZER" } });
    let r = app.gql(&partner, START, other_segment).await;
    assert_eq!(
        r["data"]["startEmailSequence"]["emailSequence"]["status"], "ACTIVE",
        "{r}"
    );

    let cancelled = change_sequence(&app, &t.admin_key, "cancel", &id).await;
    assert_eq!(
        cancelled["emailSequence"]["status"], "CANCELLED",
        "{cancelled}"
    );
    // Closed: a new one may start.
    let r = app.gql(&partner, START, again).await;
    assert_eq!(
        r["data"]["startEmailSequence"]["emailSequence"]["status"], "ACTIVE",
        "{r}"
    );
    assert_eq!(sequence_rows(&app, t.id).await.1, 6, "one event per change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sequence_changes_write_nothing() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Sequences").await;
    let other = app.tenant("Winery B").await;
    let r = app
        .gql(
            &t.admin_key,
            START,
            json!({ "input": { "recipientEmail": "a@example.com", "segment": "COLLECTOR_UNUSED" } }),
        )
        .await;
    let id = r["data"]["startEmailSequence"]["emailSequence"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = app
        .page_ids(&other.admin_key, "emailSequences", "")
        .await
        .remove(0);
    let cancelled = change_sequence(&app, &t.admin_key, "cancel", &id).await;
    assert_eq!(cancelled["emailSequence"]["status"], "CANCELLED");
    let before = sequence_rows(&app, t.id).await;
    let others_before = sequence_rows(&app, other.id).await;

    for (input, field, code) in [
        (
            json!({ "recipientEmail": "not-an-address", "segment": "COLLECTOR_UNUSED" }),
            "recipientEmail",
            "INVALID",
        ),
        (
            json!({ "recipientEmail": "b@example.com", "segment": "COLLECTOR_UNUSED",
                 "contactId": "00000000-0000-0000-0000-000000000001" }),
            "contactId",
            "NOT_FOUND",
        ),
    ] {
        let r = app
            .gql(&t.admin_key, START, json!({ "input": input }))
            .await;
        let error = &r["data"]["startEmailSequence"]["userErrors"][0];
        assert_eq!(
            (&error["field"], &error["code"]),
            (&json!(["input", field]), &json!(code)),
            "{r}"
        );
    }
    // Unknown segment, malformed id: refused before anything runs.
    let r = app
        .gql(
            &t.admin_key,
            START,
            json!({ "input": { "recipientEmail": "b@example.com", "segment": "VIP" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let r = app
        .gql(
            &t.admin_key,
            "mutation { pauseEmailSequence(input: { id: \"nope\" }) { userErrors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    // No way out of cancelled; another tenant's sequence does not exist here.
    for change in ["pause", "resume", "cancel"] {
        let r = change_sequence(&app, &t.admin_key, change, &id).await;
        assert_eq!(
            r["userErrors"][0]["code"], "INVALID_TRANSITION",
            "{change}: {r}"
        );
        let r = change_sequence(&app, &t.admin_key, change, &theirs).await;
        assert_eq!(r["userErrors"][0]["code"], "NOT_FOUND", "{change}: {r}");
    }
    // Analysts start nothing; partners start sequences but do not change them.
    let analyst = app.key(&t, Role::Analyst).await;
    let partner = app.key(&t, Role::Partner).await;
    let r = app
        .gql(&analyst, START, json!({ "input": { "recipientEmail": "c@example.com", "segment": "COLLECTOR_UNUSED" } }))
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    let r = app
        .gql(
            &partner,
            "mutation($id: ID!) { pauseEmailSequence(input: { id: $id }) { userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    assert_eq!(sequence_rows(&app, t.id).await, before, "nothing written");
    assert_eq!(sequence_rows(&app, other.id).await, others_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_starts_open_one_sequence_and_racing_changes_apply_one_at_a_time() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Sequences").await;
    let start = json!({ "input": { "recipientEmail": "race@example.com", "segment": "REJECTED_REQUESTER" } });
    let answers =
        futures_util::future::join_all((0..8).map(|_| app.gql(&t.admin_key, START, start.clone())))
            .await;
    let started: Vec<&Value> = answers
        .iter()
        .map(|r| &r["data"]["startEmailSequence"])
        .filter(|p| p["emailSequence"].is_object())
        .collect();
    assert_eq!(started.len(), 1, "{answers:?}");
    for r in &answers {
        let p = &r["data"]["startEmailSequence"];
        assert!(
            p["emailSequence"].is_object() || p["userErrors"][0]["code"] == "CONFLICT",
            "{r}"
        );
    }
    let id = started[0]["emailSequence"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Pauses and cancels at once: exactly one pause can win (from active), exactly one
    // cancel (from active or paused); every other one is refused.
    let changes = ["pause", "cancel", "pause", "cancel", "pause", "cancel"];
    let answers = futures_util::future::join_all(
        changes
            .iter()
            .map(|change| change_sequence(&app, &t.admin_key, change, &id)),
    )
    .await;
    let applied: Vec<&str> = changes
        .iter()
        .zip(&answers)
        .filter(|(_, r)| r["emailSequence"].is_object())
        .map(|(change, _)| *change)
        .collect();
    for r in &answers {
        assert!(
            r["emailSequence"].is_object() || r["userErrors"][0]["code"] == "INVALID_TRANSITION",
            "{r}"
        );
    }
    assert_eq!(
        applied.iter().filter(|c| **c == "cancel").count(),
        1,
        "{applied:?}"
    );
    assert!(
        applied.iter().filter(|c| **c == "pause").count() <= 1,
        "{applied:?}"
    );
    let (rows, events) = sequence_rows(&app, t.id).await;
    assert_eq!((rows.len() as i64, events), (1, 1 + applied.len() as i64));
    assert!(rows[0].contains("\"status\":\"cancelled\""), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widget_key_works_only_on_the_sites_its_widget_allows_and_pages_may_call_across_origins()
{
    let app = TestApp::start().await;
    let t = app.bare_tenant("Embedded").await;
    let r = app
        .gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "allowedDomains": ["shop.example.com", "*.example.org"] } }),
        )
        .await;
    let widget = configured(&r)["apiKey"].as_str().unwrap().to_owned();
    let graphql = format!("{}/graphql", app.base);
    let post = |key: &str, origin: Option<&str>| {
        let mut request = app
            .client
            .post(&graphql)
            .bearer_auth(key)
            .json(&json!({ "query": TESTIMONIALS }));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send()
    };
    // From an allowed site (any port, any case), or not from a web page: answered, and
    // the page may read the answer.
    for origin in [
        Some("https://shop.example.com"),
        Some("http://SHOP.example.com:8080"),
        Some("https://news.example.org"),
        None,
    ] {
        let response = post(&widget, origin).await.unwrap();
        assert_eq!(response.status(), 200, "{origin:?}");
        let allowed = response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(allowed.as_deref(), origin, "{origin:?}");
        let body: Value = response.json().await.unwrap();
        assert!(body["errors"].is_null(), "{origin:?}: {body}");
    }
    // From any other site: refused, nothing run.
    for origin in ["https://evil.example", "https://example.org", "null"] {
        let response = post(&widget, Some(origin)).await.unwrap();
        assert_eq!(response.status(), 403, "{origin}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
        assert!(body["data"].is_null(), "{body}");
    }
    // API keys are not bound to sites; a widget allowed anywhere neither.
    let response = post(&t.admin_key, Some("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let r = app
        .gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "allowedDomains": [] } }),
        )
        .await;
    assert_eq!(configured(&r)["allowedDomains"], json!([]));
    let response = post(&widget, Some("https://evil.example")).await.unwrap();
    assert_eq!(response.status(), 200);

    // The browser's preflight: the methods and headers a page may use, no credentials.
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, &graphql)
        .header("Origin", "https://shop.example.com")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example.com"
    );
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));
    assert!(headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(headers.get("access-control-allow-credentials").is_none());
}

fn sha256_hex(text: &str) -> String {
    growthgraph::auth::sha256_hex(text)
}

/// A public demo request: `POST` (with `body`) or `GET` `path`, no key; status and body.
async fn demo_call(
    app: &TestApp,
    post: Option<Value>,
    path: &str,
    forwarded: Option<&str>,
) -> (u16, Value, Option<String>) {
    let url = format!("{}{path}", app.base);
    let mut request = match post {
        Some(Value::Null) => app.client.post(url),
        Some(body) => app.client.post(url).json(&body),
        None => app.client.get(url),
    };
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        retry_after,
    )
}

/// A visitor starts a session on the tenant's public page without a key, reads it, shares
/// it and converts once (racing conversions included); only hashes of the token and the
/// IP are stored; bad input writes nothing; past 24 hours the session is hidden and purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_starts_shares_and_converts_a_demo_session_without_a_key() {
    let app = TestApp::start().await;
    let a = app.bare_tenant("Demo Winery").await;
    let start = format!("/demo/{}/sessions", a.slug);
    let (status, session, _) = demo_call(
        &app,
        Some(json!({ "visitorEmail": " Curious@Visitor.example ", "videoUrl": "https://cdn.example/v.mp4" })),
        &start,
        None,
    )
    .await;
    assert_eq!(status, 201, "{session}");
    let token = session["sessionToken"].as_str().unwrap().to_owned();
    assert!(token.starts_with("dms_") && token.len() == 52, "{token}");
    assert_eq!(session["visitorEmail"], "curious@visitor.example");
    assert_eq!(session["shareCount"], 0);
    assert_eq!(session["converted"], false);
    let (rows, started) = app
        .rows_and_events("demo_sessions", a.id, "demo_session.started")
        .await;
    assert_eq!((rows.len(), started), (1, 1));
    let row: Value = serde_json::from_str(&rows[0]).unwrap();
    assert_eq!(
        row["session_token"],
        sha256_hex(&token),
        "the token is kept as its hash"
    );
    assert_eq!(
        row["ip_hash"],
        sha256_hex("127.0.0.1"),
        "the IP is kept as its hash"
    );
    assert!(!rows[0].contains("127.0.0.1") && !rows[0].contains(&token));

    // Refused input: a coded error on its field, nothing written.
    for (body, field) in [
        (
            json!({ "visitorEmail": "not-an-email" }),
            json!(["input", "visitorEmail"]),
        ),
        (
            json!({ "videoUrl": "http://cdn.example/v.mp4" }),
            json!(["input", "videoUrl"]),
        ),
        (
            json!({ "videoUrl": "x".repeat(3000) }),
            json!(["input", "videoUrl"]),
        ),
        (json!({ "admin": true }), json!([])),
        (json!(["a list"]), json!([])),
    ] {
        let (status, r, _) = demo_call(&app, Some(body.clone()), &start, None).await;
        assert_eq!(status, 400, "{body}: {r}");
        assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{body}: {r}");
        let got = r["errors"][0]["extensions"]["field"].clone();
        assert_eq!(if got.is_null() { json!([]) } else { got }, field, "{body}");
    }
    let (unknown, r, _) = demo_call(
        &app,
        Some(Value::Null),
        "/demo/no-such-winery/sessions",
        None,
    )
    .await;
    assert_eq!((unknown, error_code(&r)), (404, Some("NOT_FOUND")));
    assert_eq!(
        app.rows_and_events("demo_sessions", a.id, "demo_session.started")
            .await,
        (rows.clone(), 1)
    );

    let path = format!("/demo-sessions/{token}");
    for _ in 0..2 {
        let (status, r, _) =
            demo_call(&app, Some(Value::Null), &format!("{path}/share"), None).await;
        assert_eq!(status, 200, "{r}");
    }
    let (status, r, _) = demo_call(&app, None, &path, None).await;
    assert_eq!((status, r["shareCount"].clone()), (200, json!(2)));
    // Five conversions racing: one is recorded.
    let convert = format!("{path}/convert");
    let converts = (0..5).map(|_| demo_call(&app, Some(Value::Null), &convert, None));
    let answers = futures_util::future::join_all(converts).await;
    let first = answers[0].1["convertedAt"].clone();
    assert!(first.is_string(), "{}", answers[0].1);
    for (status, r, _) in &answers {
        assert_eq!(
            (*status, &r["converted"], &r["convertedAt"]),
            (200, &json!(true), &first)
        );
    }
    assert_eq!(
        app.rows_and_events("demo_sessions", a.id, "demo_session.converted")
            .await
            .1,
        1
    );
    // Another's or a made-up token names nothing.
    for bad in [
        "dms_nope",
        &format!("dms_{}", "0".repeat(48)),
        &token.replace("dms_", "wgt_"),
    ] {
        let (status, _, _) = demo_call(&app, None, &format!("/demo-sessions/{bad}"), None).await;
        assert_eq!(status, 404, "{bad}");
    }
    let listed = app
        .gql(
            &a.admin_key,
            "{ demoSessions { nodes { id shareCount converted } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["data"]["demoSessions"]["nodes"],
        json!([{ "id": session["id"], "shareCount": 2, "converted": true }])
    );

    // Past its 24 hours: hidden from the visitor and the tenant, then purged.
    app.insert_for(
        &a,
        "UPDATE demo_sessions SET expires_at = now() - interval '1 second' WHERE tenant_id = $1",
    )
    .await;
    for (post, suffix) in [
        (None, ""),
        (Some(Value::Null), "/share"),
        (Some(Value::Null), "/convert"),
    ] {
        let (status, _, _) = demo_call(&app, post, &format!("{path}{suffix}"), None).await;
        assert_eq!(status, 404, "expired {suffix}");
    }
    let listed = app
        .gql(&a.admin_key, "{ demoSessions { nodes { id } } }", json!({}))
        .await;
    assert_eq!(listed["data"]["demoSessions"]["nodes"], json!([]));
    let analyst = app.key(&a, Role::Analyst).await;
    let cleanup = "mutation { cleanupExpiredDemoSessions { deletedCount userErrors { code } } }";
    assert_eq!(
        error_code(&app.gql(&analyst, cleanup, json!({})).await),
        Some("FORBIDDEN")
    );
    // Another tenant's expired session is not the caller's to delete.
    let b = app.bare_tenant("Demo Other").await;
    app.insert_for(&b, "INSERT INTO demo_sessions (tenant_id, session_token, expires_at) VALUES ($1, 'b', now() - interval '1 day')").await;
    let r = app.gql(&a.admin_key, cleanup, json!({})).await;
    assert_eq!(
        r["data"]["cleanupExpiredDemoSessions"]["deletedCount"], 1,
        "{r}"
    );
    assert_eq!(
        app.rows_and_events("demo_sessions", a.id, "x")
            .await
            .0
            .len(),
        0
    );
    let kept = app.rows_and_events("demo_sessions", b.id, "x").await.0;
    assert_eq!(kept.len(), 1);
}

/// One visitor starts at most the hourly number of sessions per tenant, also when their
/// requests race; another visitor, or another tenant, is not held back. Behind a trusted
/// proxy the visitor is the last `X-Forwarded-For` address; an IPv6 visitor is their /64.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_visitor_starts_a_bounded_number_of_demo_sessions_even_racing() {
    let args = growthgraph::config::ServeArgs {
        demo_sessions_per_hour: 3,
        trust_forwarded_for: true,
        ..Default::default()
    };
    let app = TestApp::start_with(args).await;
    let a = app.bare_tenant("Demo A").await;
    let b = app.bare_tenant("Demo B").await;
    let start = |t: &TestTenant| format!("/demo/{}/sessions", t.slug);
    let start_a = start(&a);
    let racing = (0..10).map(|_| {
        demo_call(
            &app,
            Some(Value::Null),
            &start_a,
            Some("10.1.1.1, 203.0.113.9"),
        )
    });
    let answers = futures_util::future::join_all(racing).await;
    let started = answers.iter().filter(|(s, _, _)| *s == 201).count();
    assert_eq!(started, 3, "{answers:?}");
    for (status, r, retry_after) in answers.iter().filter(|(s, _, _)| *s != 201) {
        assert_eq!((*status, error_code(r)), (429, Some("RATE_LIMITED")));
        let secs: u64 = retry_after.as_deref().unwrap().parse().unwrap();
        assert!((1..=3600).contains(&secs), "{secs}");
    }
    let count = |rows: Vec<String>, ip: &str| {
        rows.iter()
            .filter(|r| serde_json::from_str::<Value>(r).unwrap()["ip_hash"] == sha256_hex(ip))
            .count()
    };
    let rows = app.rows_and_events("demo_sessions", a.id, "x").await.0;
    assert_eq!(count(rows, "203.0.113.9"), 3);
    // Another visitor, and the same visitor on another tenant's page, may start.
    assert_eq!(
        demo_call(&app, Some(Value::Null), &start(&a), Some("198.51.100.7"))
            .await
            .0,
        201
    );
    assert_eq!(
        demo_call(&app, Some(Value::Null), &start(&b), Some("203.0.113.9"))
            .await
            .0,
        201
    );
    // Two addresses of one IPv6 /64 are one visitor.
    for (i, ip) in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2:ffff::9",
        "2001:db8:1:2::3",
    ]
    .iter()
    .enumerate()
    {
        let expected = if i < 3 { 201 } else { 429 };
        assert_eq!(
            demo_call(&app, Some(Value::Null), &start(&a), Some(ip))
                .await
                .0,
            expected,
            "{ip}"
        );
    }
    let rows = app.rows_and_events("demo_sessions", a.id, "x").await.0;
    assert_eq!(count(rows, "2001:db8:1:2::/64"), 3);

    // Without a trusted proxy the header is the client's word, and ignored.
    let direct = TestApp::start_with(growthgraph::config::ServeArgs {
        demo_sessions_per_hour: 3,
        ..Default::default()
    })
    .await;
    let c = direct.bare_tenant("Demo C").await;
    for forwarded in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"] {
        demo_call(&direct, Some(Value::Null), &start(&c), Some(forwarded)).await;
    }
    let rows = direct.rows_and_events("demo_sessions", c.id, "x").await.0;
    assert_eq!((rows.len(), count(rows, "127.0.0.1")), (3, 3));
}

/// Seed 000's audience: contacts and their LinkedIn consent (stamped when given), and
/// testimonials moderated once (also when moderators race), shared on LinkedIn only when
/// published and consented; the widget shows its newest `maxTestimonials` published ones
/// (an inactive widget's key no longer authenticates); refusals are coded and write nothing; another tenant's rows are
/// out of reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testimonials_are_moderated_once_and_shared_only_with_consent() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Audience").await;
    let other = app.bare_tenant("Audience Other").await;
    const SAVE: &str = "mutation($i: SaveContactInput!) { saveContact(input: $i) { contact { id name email linkedinConsent linkedinConsentAt } userErrors { field code } } }";
    const CONSENT: &str = "mutation($c: ID!, $v: Boolean!) { setLinkedinConsent(input: { contactId: $c, consent: $v }) { contact { linkedinConsent linkedinConsentAt } userErrors { code } } }";
    const CREATE: &str = "mutation($i: CreateTestimonialInput!) { createTestimonial(input: $i) { testimonial { id status contactId } userErrors { field code } } }";
    const MODERATE: &str = "mutation($id: ID!, $d: ModerationDecision!) { moderateTestimonial(input: { id: $id, decision: $d }) { testimonial { status publishedAt } userErrors { code } } }";
    const SHARE: &str = "mutation($id: ID!) { shareTestimonialOnLinkedin(input: { id: $id }) { testimonial { linkedinSharedAt } userErrors { code } } }";
    let gql = |key: &str, q: &'static str, v: Value| {
        let (app, key) = (&app, key.to_owned());
        async move { app.gql(&key, q, v).await }
    };
    // Refused input writes nothing.
    for (input, field) in [
        (json!({ "name": "A", "email": "nope" }), "email"),
        (json!({ "name": " " }), "name"),
        (
            json!({ "name": "A", "linkedinUrl": "http://linkedin.example/a" }),
            "linkedinUrl",
        ),
    ] {
        let r = gql(&t.admin_key, SAVE, json!({ "i": input })).await;
        assert_eq!(
            r["data"]["saveContact"]["userErrors"][0]["field"],
            json!(["input", field]),
            "{r}"
        );
    }
    assert_eq!(
        app.rows_and_events("contacts", t.id, "contact.saved").await,
        (vec![], 0)
    );
    let r = gql(
        &t.admin_key,
        SAVE,
        json!({ "i": { "name": "Ann", "email": "Ann@Example.com" } }),
    )
    .await;
    let contact = r["data"]["saveContact"]["contact"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    assert_eq!(
        r["data"]["saveContact"]["contact"]["email"],
        "ann@example.com"
    );
    assert_eq!(
        r["data"]["saveContact"]["contact"]["linkedinConsent"],
        false
    );

    for (input, code) in [
        (
            json!({ "contactId": contact, "content": "Great", "rating": 6 }),
            "INVALID",
        ),
        (json!({ "contactId": contact, "content": "" }), "INVALID"),
        (
            json!({ "contactId": Uuid::new_v4(), "content": "Great" }),
            "NOT_FOUND",
        ),
    ] {
        let r = gql(&t.admin_key, CREATE, json!({ "i": input })).await;
        assert_eq!(
            r["data"]["createTestimonial"]["userErrors"][0]["code"], code,
            "{r}"
        );
    }
    let r = gql(
        &other.admin_key,
        CREATE,
        json!({ "i": { "contactId": contact, "content": "Mine" } }),
    )
    .await;
    assert_eq!(
        r["data"]["createTestimonial"]["userErrors"][0]["code"], "NOT_FOUND",
        "another tenant's contact"
    );
    assert_eq!(
        app.rows_and_events("testimonials", t.id, "testimonial.changed")
            .await,
        (vec![], 0)
    );

    let mut ids = Vec::new();
    for n in 0..3 {
        let r = gql(&t.admin_key, CREATE, json!({ "i": { "contactId": contact, "content": format!("Wonderful wines {n}"), "rating": 5 } })).await;
        let created = &r["data"]["createTestimonial"]["testimonial"];
        assert_eq!(
            (created["status"].as_str(), created["contactId"].as_str()),
            (Some("PENDING_REVIEW"), Some(contact.as_str())),
            "{r}"
        );
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    // Two moderators race on one: one decision stands.
    let (a, b) = tokio::join!(
        gql(
            &t.admin_key,
            MODERATE,
            json!({ "id": ids[0], "d": "PUBLISH" })
        ),
        gql(
            &t.admin_key,
            MODERATE,
            json!({ "id": ids[0], "d": "REJECT" })
        ),
    );
    let outcomes: Vec<&Value> = [&a, &b]
        .iter()
        .map(|r| &r["data"]["moderateTestimonial"]["userErrors"])
        .collect();
    assert_eq!(
        outcomes.iter().filter(|e| **e == &json!([])).count(),
        1,
        "{a} {b}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|e| e[0]["code"] == "INVALID_TRANSITION")
            .count(),
        1
    );
    let analyst = app.key(&t, Role::Analyst).await;
    let r = gql(&analyst, MODERATE, json!({ "id": ids[1], "d": "PUBLISH" })).await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
    let r = gql(
        &other.admin_key,
        MODERATE,
        json!({ "id": ids[1], "d": "PUBLISH" }),
    )
    .await;
    assert_eq!(
        r["data"]["moderateTestimonial"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
    for id in &ids[1..] {
        let r = gql(&t.admin_key, MODERATE, json!({ "id": id, "d": "PUBLISH" })).await;
        assert!(
            r["data"]["moderateTestimonial"]["testimonial"]["publishedAt"].is_string(),
            "{r}"
        );
    }
    let published = ids[1].clone();

    // Sharing needs the contact's consent, stamped when given, and happens once.
    let r = gql(&t.admin_key, SHARE, json!({ "id": published })).await;
    assert_eq!(
        r["data"]["shareTestimonialOnLinkedin"]["userErrors"][0]["code"], "NOT_ELIGIBLE",
        "{r}"
    );
    let r = gql(&t.admin_key, CONSENT, json!({ "c": contact, "v": true })).await;
    let stamped = r["data"]["setLinkedinConsent"]["contact"]["linkedinConsentAt"].clone();
    assert!(stamped.is_string(), "{r}");
    let r = gql(&t.admin_key, CONSENT, json!({ "c": contact, "v": true })).await;
    assert_eq!(
        r["data"]["setLinkedinConsent"]["contact"]["linkedinConsentAt"], stamped,
        "the first consent's stamp stays"
    );
    let r = gql(&t.admin_key, SHARE, json!({ "id": published })).await;
    let shared = r["data"]["shareTestimonialOnLinkedin"]["testimonial"]["linkedinSharedAt"].clone();
    assert!(shared.is_string(), "{r}");
    let r = gql(&t.admin_key, SHARE, json!({ "id": published })).await;
    assert_eq!(
        r["data"]["shareTestimonialOnLinkedin"]["testimonial"]["linkedinSharedAt"],
        shared
    );
    let r = gql(&t.admin_key, CONSENT, json!({ "c": contact, "v": false })).await;
    assert!(
        r["data"]["setLinkedinConsent"]["contact"]["linkedinConsentAt"].is_null(),
        "{r}"
    );
    let r = gql(&t.admin_key, SHARE, json!({ "id": ids[2] })).await;
    assert_eq!(
        r["data"]["shareTestimonialOnLinkedin"]["userErrors"][0]["code"],
        "NOT_ELIGIBLE"
    );

    // Analysts read everything.
    let r = gql(
        &analyst,
        "{ contacts { nodes { id } } testimonials(status: PUBLISHED) { nodes { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        r["data"]["contacts"]["nodes"].as_array().unwrap().len(),
        1,
        "{r}"
    );
    let listed: Vec<&str> = r["data"]["testimonials"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| {
            *id == ids[1]
                || *id == ids[2]
                || (a["data"]["moderateTestimonial"]["userErrors"] == json!([]) && *id == ids[0])
        })
        .collect();
    let mut got = listed.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);

    // The widget: its newest `maxTestimonials`, none while inactive; no contact ids.
    let widget = "mutation($i: ConfigureWidgetInput!) { configureWidget(input: $i) { widgetConfig { apiKey } userErrors { code } } }";
    let r = app
        .gql(
            &t.admin_key,
            widget,
            json!({ "i": { "maxTestimonials": 2 } }),
        )
        .await;
    let key = r["data"]["configureWidget"]["widgetConfig"]["apiKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown =
        "{ publishedTestimonials(first: 10) { nodes { id contactId } pageInfo { hasNextPage } } }";
    let r = app.gql(&key, shown, json!({})).await;
    let nodes = r["data"]["publishedTestimonials"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(nodes.len(), 2, "{r}");
    assert_eq!(
        r["data"]["publishedTestimonials"]["pageInfo"]["hasNextPage"],
        false
    );
    assert!(nodes.iter().all(|n| n["contactId"].is_null()));
    let r = app.gql(&t.admin_key, shown, json!({})).await;
    assert!(
        r["data"]["publishedTestimonials"]["nodes"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    // An inactive widget's key shows nothing: it no longer authenticates.
    app.gql(&t.admin_key, widget, json!({ "i": { "isActive": false } }))
        .await;
    let (status, r) = app.post(Some(&key), json!({ "query": shown })).await;
    assert_eq!(
        (status, error_code(&r)),
        (401, Some("UNAUTHENTICATED")),
        "{r}"
    );
}

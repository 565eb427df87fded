//! The testimonial widget: its configuration (created once, changed partly, refused whole, raced), its key bound to the sites it allows, testimonials moderated and shared with consent.

use super::*;

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
            assert_eq!(user_error_code(&r, "configureWidget"), "INVALID");
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
        assert_eq!(user_error_code(&r, "createTestimonial"), code, "{r}");
    }
    let r = gql(
        &other.admin_key,
        CREATE,
        json!({ "i": { "contactId": contact, "content": "Mine" } }),
    )
    .await;
    assert_eq!(
        user_error_code(&r, "createTestimonial"),
        "NOT_FOUND",
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
    assert_eq!(user_error_code(&r, "moderateTestimonial"), "NOT_FOUND");
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
        user_error_code(&r, "shareTestimonialOnLinkedin"),
        "NOT_ELIGIBLE",
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
        user_error_code(&r, "shareTestimonialOnLinkedin"),
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

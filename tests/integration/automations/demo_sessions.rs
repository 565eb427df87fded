//! Public demo sessions: started without a key, shared and converted by their token, bounded per visitor even racing.

use super::*;

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

//! Authentication over HTTP and WebSocket, roles, widget keys, the key commands, and what admins alone may do.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_refuses_missing_malformed_unknown_and_revoked_keys() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let analyst = app.key(&a, Role::Analyst).await;
    let query = json!({ "query": "{ viewer { tenant { id } } }" });

    let unknown = format!("gg_admin_{}", "ab".repeat(24));
    for key in [
        None,
        Some(""),
        Some("not-a-key"),
        Some("gg_admin_"),
        Some(unknown.as_str()),
    ] {
        let (status, body) = app.post(key, query.clone()).await;
        assert_eq!(status, 401, "key {key:?}");
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
        assert!(body.get("data").is_none(), "no data for {key:?}");
    }
    let response = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("Authorization", format!("Token {}", a.admin_key))
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Revocation takes effect on the very next request.
    assert_eq!(app.post(Some(&analyst), query.clone()).await.0, 200);
    let id = app
        .gql(&analyst, "{ viewer { apiKey { id } } }", json!({}))
        .await["data"]["viewer"]["apiKey"]["id"]
        .clone();
    let r = app
        .gql(&a.admin_key, "mutation($id: ID!) { revokeApiKey(input: { id: $id }) { apiKey { revokedAt } userErrors { code } } }", json!({ "id": id }))
        .await;
    assert!(
        r["data"]["revokeApiKey"]["apiKey"]["revokedAt"].is_string(),
        "{r}"
    );
    let (status, body) = app.post(Some(&analyst), query.clone()).await;
    assert_eq!((status, error_code(&body)), (401, Some("UNAUTHENTICATED")));

    // Revoking it again is a refused transition, not an error.
    let r = app
        .gql(
            &a.admin_key,
            "mutation($id: ID!) { revokeApiKey(input: { id: $id }) { userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(user_error_code(&r, "revokeApiKey"), "INVALID_TRANSITION");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_enforced_by_the_guard() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let analyst = app.key(&a, Role::Analyst).await;
    let partner = app.key(&a, Role::Partner).await;
    assert!(analyst.starts_with("gg_analyst_") && partner.starts_with("gg_partner_"));
    let mut owner = app.owner().await;
    let keys_before = count(&mut owner, "SELECT count(*) AS count FROM api_keys").await;

    let create = "mutation { createApiKey(input: { name: \"x\", role: ADMIN }) { secret } }";
    for key in [&analyst, &partner] {
        let r = app.gql(key, create, json!({})).await;
        assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
        assert!(r["data"].is_null(), "{r}");
        let r = app
            .gql(key, "{ apiKeys { nodes { id } } }", json!({}))
            .await;
        assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
        let r = app
            .gql(key, "{ viewer { apiKey { role } } }", json!({}))
            .await;
        assert!(r["errors"].is_null(), "{r}");
    }
    assert_eq!(
        count(&mut owner, "SELECT count(*) AS count FROM api_keys").await,
        keys_before,
        "nothing written"
    );
    let r = app.gql(&a.admin_key, create, json!({})).await;
    assert!(r["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .starts_with("gg_admin_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_keys_read_published_testimonials_and_nothing_else() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    app.tenant("Winery B").await;
    let mut owner = app.owner().await;
    let widget = widget_key(&mut owner, a.id).await;
    assert!(widget.starts_with("wgt_") && widget.len() == 52);
    let published = count(
        &mut owner,
        &format!("SELECT count(*) AS count FROM testimonials WHERE tenant_id = '{}' AND status = 'published'", a.id),
    )
    .await;
    let total = count(
        &mut owner,
        &format!(
            "SELECT count(*) AS count FROM testimonials WHERE tenant_id = '{}'",
            a.id
        ),
    )
    .await;
    assert!(total > published && published > 0);

    let r = app
        .gql(
            &widget,
            "{ publishedTestimonials { nodes { id content rating } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["publishedTestimonials"]["nodes"]
            .as_array()
            .unwrap()
            .len() as i64,
        published
    );
    for forbidden in [
        "{ apiKeys { nodes { id } } }",
        "mutation { createApiKey(input: { name: \"x\", role: ADMIN }) { secret } }",
    ] {
        let r = app.gql(&widget, forbidden, json!({})).await;
        assert_eq!(error_code(&r), Some("FORBIDDEN"), "{forbidden}: {r}");
    }
}

async fn ws_connect(
    app: &TestApp,
    protocol: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = app.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The close code the server ends the socket with (None if it never closes).
async fn close_code<S>(socket: &mut S) -> Option<u16>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .ok()?
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_requires_a_valid_key_in_connection_init() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;

    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        // Valid key: acknowledged.
        let mut socket = ws_connect(&app, protocol).await;
        let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", a.admin_key) } });
        socket
            .send(Message::Text(init.to_string().into()))
            .await
            .unwrap();
        let ack = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let ack: Value = serde_json::from_str(ack.to_text().unwrap()).unwrap();
        assert_eq!(ack["type"], "connection_ack", "{protocol}");

        // Unknown, missing or malformed keys: closed as unauthorized.
        for payload in [
            json!({ "authorization": "Bearer gg_admin_0000" }),
            json!({}),
            json!({ "authorization": a.admin_key }),
        ] {
            let mut socket = ws_connect(&app, protocol).await;
            let init = json!({ "type": "connection_init", "payload": payload });
            socket
                .send(Message::Text(init.to_string().into()))
                .await
                .unwrap();
            assert_eq!(
                close_code(&mut socket).await,
                Some(4401),
                "{protocol} {payload}"
            );
        }
    }

    // No connection_init at all: closed after the init timeout.
    let mut socket = ws_connect(&app, "graphql-transport-ws").await;
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut socket).await, Some(4408));
    assert!(started.elapsed() >= Duration::from_secs(4));
}

fn cli(database_url: &str, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_growthgraph"))
        .arg("--database-url")
        .arg(database_url)
        .args(args)
        .env("GROWTHGRAPH_LOG", "warn")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

fn printed_key(output: &str) -> String {
    output
        .split_whitespace()
        .find(|w| w.starts_with("gg_"))
        .unwrap_or_else(|| panic!("no key in {output}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_and_key_commands_print_working_keys_once() {
    let app = TestApp::start().await;
    let (ok, out) = cli(
        &app.database_url,
        &[
            "tenant",
            "create",
            "--name",
            "Cave Coopérative",
            "--slug",
            "cave-coop",
        ],
    );
    assert!(ok, "{out}");
    let admin = printed_key(&out);
    assert!(admin.starts_with("gg_admin_"));
    let r = app
        .gql(
            &admin,
            "{ viewer { tenant { slug name } apiKey { role } } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["viewer"]["tenant"]["slug"], "cave-coop");
    assert_eq!(r["data"]["viewer"]["apiKey"]["role"], "ADMIN");

    let (ok, out) = cli(
        &app.database_url,
        &[
            "key",
            "create",
            "--tenant",
            "cave-coop",
            "--role",
            "partner",
            "--name",
            "shop",
        ],
    );
    assert!(ok, "{out}");
    let partner = printed_key(&out);
    assert!(partner.starts_with("gg_partner_"));
    let r = app
        .gql(&partner, "{ viewer { apiKey { role name } } }", json!({}))
        .await;
    assert_eq!(
        r["data"]["viewer"]["apiKey"],
        json!({ "role": "PARTNER", "name": "shop" })
    );

    // Refusals: a taken slug, an unknown tenant, an unknown role.
    let (ok, out) = cli(
        &app.database_url,
        &["tenant", "create", "--name", "Again", "--slug", "cave-coop"],
    );
    assert!(!ok && out.contains("already exists"), "{out}");
    let (ok, _) = cli(
        &app.database_url,
        &["key", "create", "--tenant", "nope", "--role", "admin"],
    );
    assert!(!ok);
    let (ok, _) = cli(
        &app.database_url,
        &["key", "create", "--tenant", "cave-coop", "--role", "root"],
    );
    assert!(!ok);
    // Only hashes are stored.
    let mut owner = app.owner().await;
    let stored: i64 = count(
        &mut owner,
        &format!(
            "SELECT count(*) AS count FROM api_keys WHERE key_prefix = '{}'",
            &partner[..partner.len() - 40]
        ),
    )
    .await;
    assert_eq!(stored, 1);
    let clear: i64 = count(
        &mut owner,
        &format!(
            "SELECT count(*) AS count FROM api_keys WHERE encode(key_hash, 'escape') LIKE '%{}%'",
            &partner[20..]
        ),
    )
    .await;
    assert_eq!(clear, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_list_the_tenants_queue_for_every_key_and_only_admins_act_on_them() {
    let app = TestApp::start().await;
    let a = app.bare_tenant("Jobs A").await;
    let b = app.bare_tenant("Jobs B").await;
    // Pending ones run tomorrow, so the worker leaves them alone during the test.
    for tenant in [&a, &b] {
        app.insert_for(
            tenant,
            "INSERT INTO queue_jobs (tenant_id, job_type, status, run_at, created_at) \
             SELECT $1, 'crm_sync', (ARRAY['pending', 'failed', 'completed', 'pending'])[g], \
                    now() + interval '1 day', now() - interval '1 hour' \
             FROM generate_series(1, 4) g",
        )
        .await;
    }
    let want = app.ids_by_sql("queue_jobs", &a, None).await;
    assert_eq!(want.len(), 4);
    assert_eq!(app.page_ids(&a.admin_key, "jobs", "").await, want);
    assert_eq!(
        app.page_ids(&a.admin_key, "jobs", ", status: PENDING")
            .await,
        app.ids_by_sql("queue_jobs", &a, Some(("status", "pending")))
            .await
    );
    let theirs = app.page_ids(&b.admin_key, "jobs", "").await;
    assert!(theirs.len() == 4 && theirs.iter().all(|id| !want.contains(id)));
    // Every key reads the queue (what a job says holds no secret); only admins act on it.
    for role in [Role::Analyst, Role::Partner] {
        let key = app.key(&a, role).await;
        assert_eq!(app.page_ids(&key, "jobs", "").await, want, "{role:?}");
        let retry = format!(
            "mutation {{ retryJob(input: {{ id: \"{}\" }}) {{ userErrors {{ code }} }} }}",
            want[0]
        );
        let r = app.gql(&key, &retry, json!({})).await;
        assert_eq!(
            r["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{role:?}: {r}"
        );
    }
}

/// Admins set their tenant's email preferences (merged: what is left out stays) and last
/// activity; every key reads them; another tenant's stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_set_their_tenants_email_preferences_and_last_activity() {
    let app = TestApp::start().await;
    let a = app.bare_tenant("Prefs A").await;
    let b = app.bare_tenant("Prefs B").await;
    const READ: &str = "{ viewer { tenant { emailPreferences { marketing sequences weeklyDigest } lastActiveAt } } }";
    const UPDATE: &str = "mutation($i: UpdateTenantSettingsInput!) { updateTenantSettings(input: $i) { tenant { emailPreferences { marketing sequences weeklyDigest } lastActiveAt } userErrors { code } } }";
    let r = app.gql(&a.admin_key, READ, json!({})).await;
    assert_eq!(
        r["data"]["viewer"]["tenant"],
        json!({ "emailPreferences": { "marketing": true, "sequences": true, "weeklyDigest": true }, "lastActiveAt": null })
    );
    let analyst = app.key(&a, Role::Analyst).await;
    let r = app
        .gql(
            &analyst,
            UPDATE,
            json!({ "i": { "emailPreferences": { "marketing": false } } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
    let r = app
        .gql(
            &a.admin_key,
            UPDATE,
            json!({ "i": { "emailPreferences": { "marketing": false } } }),
        )
        .await;
    assert_eq!(
        r["data"]["updateTenantSettings"]["tenant"]["emailPreferences"],
        json!({ "marketing": false, "sequences": true, "weeklyDigest": true }),
        "{r}"
    );
    let request = app.gql(&a.admin_key, UPDATE, json!({ "i": { "emailPreferences": { "weeklyDigest": false }, "lastActiveAt": "2026-12-01T10:00:00Z" } }));
    let (r, both) = crate::common::statements_of(&app, request).await;
    let tenant = &r["data"]["updateTenantSettings"]["tenant"];
    assert_eq!(
        tenant["emailPreferences"],
        json!({ "marketing": false, "sequences": true, "weeklyDigest": false })
    );
    assert_eq!(tenant["lastActiveAt"], "2026-12-01T10:00:00+00:00");
    // Preferences alone cost what preferences with the activity do: one UPDATE (the
    // first write comes before both).
    let again = json!({ "i": { "emailPreferences": { "weeklyDigest": false } } });
    let request = app.gql(&a.admin_key, UPDATE, again);
    let (r, one) = crate::common::statements_of(&app, request).await;
    assert_eq!(r["data"]["updateTenantSettings"]["tenant"], *tenant, "{r}");
    assert_eq!(
        one, both,
        "preferences alone or with the activity: one UPDATE"
    );
    let r = app.gql(&analyst, READ, json!({})).await;
    assert_eq!(
        r["data"]["viewer"]["tenant"]["emailPreferences"]["weeklyDigest"], false,
        "{r}"
    );
    let r = app.gql(&b.admin_key, READ, json!({})).await;
    assert_eq!(
        r["data"]["viewer"]["tenant"]["emailPreferences"]["marketing"], true,
        "another tenant's"
    );
    // Each change is an event of the tenant's (three admin updates).
    let events = app
        .rows_and_events("api_keys", a.id, "tenant.settings_changed")
        .await
        .1;
    assert_eq!(events, 3);
    let theirs = app
        .rows_and_events("api_keys", b.id, "tenant.settings_changed")
        .await
        .1;
    assert_eq!(theirs, 0);
}

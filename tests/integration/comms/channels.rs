//! Channel configurations: credentials sealed and never returned, partial changes, refusals that write nothing, racing configurations.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_list_the_tenants_configurations_and_never_their_credentials() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    #[derive(QueryableByName)]
    struct Config {
        #[diesel(sql_type = Text)]
        channel_type: String,
        #[diesel(sql_type = Text)]
        provider: String,
    }
    let mut owner = app.owner().await;
    let want: Vec<(String, String)> = diesel::sql_query(
        "SELECT channel_type, provider FROM channel_configurations WHERE tenant_id = $1 \
         ORDER BY channel_type, provider",
    )
    .bind::<SqlUuid, _>(a.id)
    .load::<Config>(&mut owner)
    .await
    .unwrap()
    .into_iter()
    .map(|c| (c.channel_type.to_uppercase(), c.provider))
    .collect();
    assert!(!want.is_empty(), "the demo data configures channels");
    const CHANNELS: &str = "{ channels { id channel provider enabled configured configPublic } }";
    let r = app.gql(&a.admin_key, CHANNELS, json!({})).await;
    assert!(r["errors"].is_null(), "{r}");
    let mine = r["data"]["channels"].as_array().unwrap().clone();
    let got: Vec<(String, String)> = mine
        .iter()
        .map(|c| {
            (
                c["channel"].as_str().unwrap().to_owned(),
                c["provider"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, want);
    let r = app.gql(&b.admin_key, CHANNELS, json!({})).await;
    let theirs = r["data"]["channels"].as_array().unwrap();
    assert!(!theirs.is_empty());
    assert!(theirs
        .iter()
        .all(|c| !mine.iter().any(|m| m["id"] == c["id"])));
    // The type has no field that could carry the encrypted credentials.
    let r = app
        .gql(
            &a.admin_key,
            "{ __type(name: \"ChannelConfiguration\") { fields { name } } }",
            json!({}),
        )
        .await;
    let mut fields: Vec<&str> = r["data"]["__type"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "assistantId",
            "channel",
            "configPublic",
            "configured",
            "enabled",
            "fromAddress",
            "fromName",
            "id",
            "provider",
            "updatedAt"
        ]
    );
}

/// `tenant`'s channel configurations and their `channel.configured` events.
async fn channel_rows(app: &TestApp, tenant: Uuid) -> (Vec<String>, i64) {
    app.rows_and_events("channel_configurations", tenant, "channel.configured")
        .await
}

/// The sealed credentials of `tenant`'s email configuration with `provider`.
async fn sealed_credentials(app: &TestApp, tenant: Uuid, provider: &str) -> Option<Vec<u8>> {
    #[derive(QueryableByName)]
    struct Sealed {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Bytea>)]
        config_encrypted: Option<Vec<u8>>,
    }
    diesel::sql_query(
        "SELECT config_encrypted FROM channel_configurations \
         WHERE tenant_id = $1 AND channel_type = 'email' AND provider = $2",
    )
    .bind::<SqlUuid, _>(tenant)
    .bind::<Text, _>(provider)
    .get_result::<Sealed>(&mut app.owner().await)
    .await
    .unwrap()
    .config_encrypted
}

/// The configuration a `configureChannel` answer holds, after checking it has no error.
fn configured(r: &Value) -> &Value {
    let config = &r["data"]["configureChannel"]["channelConfiguration"];
    assert!(config.is_object(), "{r}");
    assert_eq!(
        r["data"]["configureChannel"]["userErrors"],
        json!([]),
        "{r}"
    );
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_channel_seals_credentials_and_changes_only_what_it_is_given() {
    let app = app_with_secret_key().await;
    let t = app.bare_tenant("Channels").await;
    let other = app.tenant("Winery B").await;
    let others_before = channel_rows(&app, other.id).await;

    let credentials = json!({ "apiKey": "SG.very-secret-api-key" });
    let r = app
        .gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "channel": "EMAIL", "provider": "SENDGRID", "enabled": true,
                "fromAddress": "club@winery.example", "fromName": "The Club",
                "configPublic": { "replyTo": "hello@winery.example" }, "credentials": credentials } }),
        )
        .await;
    let created = configured(&r).clone();
    assert_eq!(
        created,
        json!({ "id": created["id"], "channel": "EMAIL", "provider": "sendgrid", "enabled": true,
                "configured": true, "configPublic": { "replyTo": "hello@winery.example" },
                "assistantId": null, "fromAddress": "club@winery.example", "fromName": "The Club" })
    );
    // Stored sealed, bound to the tenant and channel: it opens with the server's key in
    // that context only, and holds nothing of the secret in the clear.
    let sealed = sealed_credentials(&app, t.id, "sendgrid").await.unwrap();
    let secret = b"very-secret-api-key";
    assert!(!sealed.windows(secret.len()).any(|w| w == secret));
    let key: SecretKey = SECRET_KEY.parse().unwrap();
    let context = credentials_context(t.id, Channel::Email, ChannelProvider::Sendgrid);
    let opened: Value = serde_json::from_slice(&key.open(&context, &sealed).unwrap()).unwrap();
    assert_eq!(opened, credentials);
    let elsewhere = credentials_context(other.id, Channel::Email, ChannelProvider::Sendgrid);
    assert!(key.open(&elsewhere, &sealed).is_none());
    // Never returned: listed, it says only that credentials are stored.
    let r = app
        .gql(
            &t.admin_key,
            "{ channels { provider configured } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["channels"],
        json!([{ "provider": "sendgrid", "configured": true }])
    );
    assert!(!r.to_string().contains("very-secret"));

    // Only what is given changes: the credentials stay sealed as they were.
    let r = app
        .gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "channel": "EMAIL", "provider": "SENDGRID", "enabled": false, "fromName": null } }),
        )
        .await;
    let changed = configured(&r);
    assert_eq!(
        (changed["id"].clone(), changed["enabled"].clone()),
        (created["id"].clone(), json!(false))
    );
    assert_eq!(changed["fromName"], Value::Null);
    assert_eq!(changed["fromAddress"], "club@winery.example");
    assert_eq!(changed["configured"], true);
    assert_eq!(
        sealed_credentials(&app, t.id, "sendgrid").await.unwrap(),
        sealed
    );
    // `null` removes them.
    let r = app
        .gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "channel": "EMAIL", "provider": "SENDGRID", "credentials": null } }),
        )
        .await;
    assert_eq!(configured(&r)["configured"], false);
    assert_eq!(sealed_credentials(&app, t.id, "sendgrid").await, None);

    // A phone channel with its voice assistant: a second configuration.
    let r = app
        .gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "channel": "PHONE", "provider": "VAPI", "enabled": true,
                "assistantId": "vapi_assistant_123", "fromAddress": "+33939035761" } }),
        )
        .await;
    assert_eq!(configured(&r)["assistantId"], "vapi_assistant_123");
    assert_eq!(configured(&r)["configured"], false);
    let (rows, events) = channel_rows(&app, t.id).await;
    assert_eq!((rows.len(), events), (2, 4));
    assert_eq!(channel_rows(&app, other.id).await, others_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_channel_refuses_bad_settings_and_non_admins_and_writes_nothing() {
    let app = app_with_secret_key().await;
    let t = app.tenant("Winery A").await;
    let before = channel_rows(&app, t.id).await;
    let huge = "x".repeat(9000);
    let email = |extra: Value| {
        let mut input = json!({ "channel": "EMAIL", "provider": "SMTP" });
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        input
    };
    for (input, field) in [
        (
            json!({ "channel": "EMAIL", "provider": "VAPI" }),
            "provider",
        ),
        (
            json!({ "channel": "WHATSAPP", "provider": "SENDGRID" }),
            "provider",
        ),
        (email(json!({ "assistantId": "a1" })), "assistantId"),
        (
            json!({ "channel": "PHONE", "provider": "VAPI", "assistantId": "" }),
            "assistantId",
        ),
        (
            email(json!({ "fromAddress": "not an address" })),
            "fromAddress",
        ),
        (email(json!({ "configPublic": "plain" })), "configPublic"),
        (
            email(json!({ "configPublic": { "x": huge } })),
            "configPublic",
        ),
        (email(json!({ "credentials": ["password"] })), "credentials"),
        (
            email(json!({ "credentials": { "password": huge } })),
            "credentials",
        ),
    ] {
        let r = app
            .gql(&t.admin_key, CONFIGURE, json!({ "input": input }))
            .await;
        let payload = &r["data"]["configureChannel"];
        assert!(payload["channelConfiguration"].is_null(), "{r}");
        assert_eq!(
            payload["userErrors"][0]["field"],
            json!(["input", field]),
            "{input}: {r}"
        );
        assert_eq!(payload["userErrors"][0]["code"], "INVALID", "{r}");
    }
    // A NUL character: refused before anything runs, at its field.
    let input = email(json!({ "fromName": "a\u{0}b" }));
    let r = app
        .gql(&t.admin_key, CONFIGURE, json!({ "input": input }))
        .await;
    assert_eq!(
        refusal(&r, "configureChannel"),
        (&json!(["input", "fromName"]), &json!("BAD_USER_INPUT")),
        "{r}"
    );
    // Not a channel or provider at all: refused before anything runs.
    for input in [
        json!({ "channel": "FAX", "provider": "SMTP" }),
        json!({ "channel": "EMAIL", "provider": "POSTMARK" }),
    ] {
        let r = app
            .gql(&t.admin_key, CONFIGURE, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    }
    for role in [Role::Analyst, Role::Partner] {
        let key = app.key(&t, role).await;
        let r = app
            .gql(
                &key,
                CONFIGURE,
                json!({ "input": email(json!({ "enabled": true })) }),
            )
            .await;
        assert_eq!(error_code(&r), Some("FORBIDDEN"), "{role:?}: {r}");
    }
    assert_eq!(channel_rows(&app, t.id).await, before, "nothing written");

    // A server without a secret key stores no credentials (and nothing else with them),
    // but configures channels.
    let keyless = TestApp::start().await;
    let u = keyless.bare_tenant("Keyless").await;
    let input = email(json!({ "enabled": true, "credentials": { "password": "p" } }));
    let r = keyless
        .gql(&u.admin_key, CONFIGURE, json!({ "input": input }))
        .await;
    let payload = &r["data"]["configureChannel"];
    assert_eq!(
        payload["userErrors"][0]["field"],
        json!(["input", "credentials"]),
        "{r}"
    );
    assert_eq!(channel_rows(&keyless, u.id).await, (vec![], 0));
    let r = keyless
        .gql(
            &u.admin_key,
            CONFIGURE,
            json!({ "input": email(json!({ "enabled": true })) }),
        )
        .await;
    assert_eq!(configured(&r)["enabled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_configurations_of_one_channel_make_one_row() {
    let app = app_with_secret_key().await;
    let t = app.bare_tenant("Channels").await;
    let answers = futures_util::future::join_all((0..8).map(|n| {
        app.gql(
            &t.admin_key,
            CONFIGURE,
            json!({ "input": { "channel": "SMS", "provider": "TWILIO", "enabled": n % 2 == 0,
                "credentials": { "authToken": format!("token-{n}") } } }),
        )
    }))
    .await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|r| configured(r)["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let (rows, events) = channel_rows(&app, t.id).await;
    assert_eq!((rows.len(), events), (1, 8));
    // The stored credentials are one call's, whole.
    #[derive(QueryableByName)]
    struct Sealed {
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        config_encrypted: Vec<u8>,
    }
    let sealed = diesel::sql_query(
        "SELECT config_encrypted FROM channel_configurations WHERE tenant_id = $1",
    )
    .bind::<SqlUuid, _>(t.id)
    .get_result::<Sealed>(&mut app.owner().await)
    .await
    .unwrap()
    .config_encrypted;
    let key: SecretKey = SECRET_KEY.parse().unwrap();
    let context = credentials_context(t.id, Channel::Sms, ChannelProvider::Twilio);
    let opened: Value = serde_json::from_slice(&key.open(&context, &sealed).unwrap()).unwrap();
    let token = opened["authToken"].as_str().unwrap();
    assert!((0..8).any(|n| token == format!("token-{n}")), "{opened}");
}

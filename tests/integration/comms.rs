//! Channels (never their credentials), the message log and the voice agents' records:
//! calls, appointments, tickets and prospects, each the tenant's own rows newest first, paged without gaps or
//! repeats; bad paging input is refused. Channels configured, their credentials sealed.

use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use growthgraph::auth::Role;
use growthgraph::config::ServeArgs;
use growthgraph::domain::comms::model::{Channel, ChannelProvider};
use growthgraph::domain::comms::ops::credentials_context;
use growthgraph::secrets::SecretKey;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{error_code, refusal, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_calls_appointments_tickets_and_prospects_list_only_the_tenants_rows() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    // More tickets and prospects for A, each batch created at one instant: ties are
    // ordered by id.
    app.insert_for(
        &a,
        "INSERT INTO tickets (tenant_id, ticket_number, subject, status, created_at) \
         SELECT $1, 'T-TEST-' || g, 'Subject ' || g, \
                (ARRAY['open', 'resolved', 'open', 'closed'])[g], now() - interval '1 day' \
         FROM generate_series(1, 4) g",
    )
    .await;
    app.insert_for(
        &a,
        "INSERT INTO prospects (tenant_id, name, status, created_at) \
         SELECT $1, 'Prospect ' || g, (ARRAY['new', 'qualified', 'new'])[g], \
                now() - interval '1 day' \
         FROM generate_series(1, 3) g",
    )
    .await;
    for (field, table) in [
        ("calls", "call_logs"),
        ("appointments", "rendez_vous"),
        ("tickets", "tickets"),
        ("prospects", "prospects"),
        ("messages", "communication_log"),
    ] {
        let rows = app.assert_lists_own_rows(field, table, &a, &b).await;
        assert!(rows >= 2, "{table} has rows to page through");
    }
    for (field, status, sql) in [
        ("tickets", "OPEN", "open"),
        ("tickets", "RESOLVED", "resolved"),
        ("prospects", "NEW", "new"),
        ("prospects", "QUALIFIED", "qualified"),
    ] {
        let args = format!(", status: {status}");
        assert_eq!(
            app.page_ids(&a.admin_key, field, &args).await,
            app.ids_by_sql(field, &a, Some(("status", sql))).await,
            "{field} with status {status}"
        );
    }
    for (channel, sql) in [("EMAIL", "email"), ("SMS", "sms")] {
        assert_eq!(
            app.page_ids(&a.admin_key, "messages", &format!(", channel: {channel}"))
                .await,
            app.ids_by_sql("communication_log", &a, Some(("channel", sql)))
                .await,
            "messages on {channel}"
        );
    }
    // The fields carry the rows' values.
    let r = app
        .gql(
            &a.admin_key,
            "{ appointments(first: 1) { nodes { clientName date time status durationMinutes } } tickets(first: 1) { nodes { ticketNumber priority status } } calls(first: 1) { nodes { provider status direction } } }",
            json!({}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let appointment = &r["data"]["appointments"]["nodes"][0];
    assert!(
        appointment["date"].as_str().unwrap().len() == 10,
        "{appointment}"
    );
    assert!(appointment["durationMinutes"].as_i64().unwrap() > 0);
    assert!(r["data"]["tickets"]["nodes"][0]["ticketNumber"].is_string());
    assert!(r["data"]["calls"]["nodes"][0]["provider"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paging_input_is_refused_with_the_field() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    for field in ["calls", "appointments", "tickets", "prospects", "messages"] {
        for args in ["first: 101", "after: \"not a cursor\""] {
            let r = app
                .gql(
                    &a.admin_key,
                    &format!("{{ {field}({args}) {{ nodes {{ id }} }} }}"),
                    json!({}),
                )
                .await;
            let error = &r["errors"][0];
            assert_eq!(
                error["extensions"]["code"], "BAD_USER_INPUT",
                "{field}({args}): {r}"
            );
        }
    }
    let r = app
        .gql(
            &a.admin_key,
            "{ tickets(status: PENDING) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
}

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

pub(crate) const SECRET_KEY: &str =
    "5f1e0c8a9b2d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f";
const CONFIGURE: &str = "mutation($input: ConfigureChannelInput!) { configureChannel(input: $input) {
    channelConfiguration { id channel provider enabled configured configPublic assistantId fromAddress fromName }
    userErrors { field code message } } }";

/// `tenant`'s channel configurations and their `channel.configured` events.
async fn channel_rows(app: &TestApp, tenant: Uuid) -> (Vec<String>, i64) {
    app.rows_and_events("channel_configurations", tenant, "channel.configured")
        .await
}

/// `tenant`'s tickets and their `ticket.changed` events.
async fn ticket_rows(app: &TestApp, tenant: Uuid) -> (Vec<String>, i64) {
    app.rows_and_events("tickets", tenant, "ticket.changed")
        .await
}

/// A server that can seal credentials.
async fn app_with_secret_key() -> TestApp {
    TestApp::start_with(ServeArgs {
        secret_key: Some(SECRET_KEY.parse().unwrap()),
        ..ServeArgs::default()
    })
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

const OPEN_TICKET: &str = "mutation($input: OpenTicketInput!) { openTicket(input: $input) {
    ticket { id ticketNumber subject channel priority status customerId assignedTo resolvedAt }
    userErrors { field code message } } }";
const UPDATE_TICKET: &str = "mutation($input: UpdateTicketInput!) { updateTicket(input: $input) {
    ticket { id status priority assignedTo resolvedAt } userErrors { field code message } } }";

async fn update_ticket(app: &TestApp, key: &str, input: Value) -> Value {
    app.gql(key, UPDATE_TICKET, json!({ "input": input })).await["data"]["updateTicket"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_open_numbered_and_move_along_their_lifecycle() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Support").await;
    let partner = app.key(&t, Role::Partner).await;
    let r = app
        .gql(
            &t.admin_key,
            "mutation { upsertCustomer(input: { email: \"caller@example.com\" }) { customer { id } } }",
            json!({}),
        )
        .await;
    let customer = r["data"]["upsertCustomer"]["customer"]["id"].clone();
    let r = app
        .gql(
            &partner,
            OPEN_TICKET,
            json!({ "input": { "subject": "Broken bottle", "customerId": customer,
                "customerEmail": "Caller@Example.com", "channel": "EMAIL", "priority": "HIGH" } }),
        )
        .await;
    let ticket = r["data"]["openTicket"]["ticket"].clone();
    assert_eq!(
        ticket,
        json!({ "id": ticket["id"], "ticketNumber": "TCK-0001", "subject": "Broken bottle",
                "channel": "email", "priority": "HIGH", "status": "OPEN", "customerId": customer,
                "assignedTo": null, "resolvedAt": null }),
        "{r}"
    );
    let r = app
        .gql(
            &partner,
            OPEN_TICKET,
            json!({ "input": { "subject": "Where is my order?" } }),
        )
        .await;
    assert_eq!(
        r["data"]["openTicket"]["ticket"]["ticketNumber"], "TCK-0002",
        "{r}"
    );
    assert_eq!(r["data"]["openTicket"]["ticket"]["channel"], "phone");
    assert_eq!(r["data"]["openTicket"]["ticket"]["priority"], "MEDIUM");

    let id = ticket["id"].clone();
    let r = update_ticket(
        &app,
        &partner,
        json!({ "id": id, "status": "IN_PROGRESS", "assignedTo": "sara" }),
    )
    .await;
    assert_eq!(
        (&r["ticket"]["status"], &r["ticket"]["assignedTo"]),
        (&json!("IN_PROGRESS"), &json!("sara")),
        "{r}"
    );
    let r = update_ticket(&app, &partner, json!({ "id": id, "status": "RESOLVED" })).await;
    assert!(r["ticket"]["resolvedAt"].is_string(), "{r}");
    let listed = app
        .page_ids(&t.admin_key, "tickets", ", status: RESOLVED")
        .await;
    assert_eq!(listed, vec![id.as_str().unwrap().to_owned()]);
    // Reopened: no longer resolved; priority and assignee change on their own.
    let r = update_ticket(
        &app,
        &partner,
        json!({ "id": id, "status": "IN_PROGRESS", "priority": "URGENT", "assignedTo": null }),
    )
    .await;
    assert_eq!(
        (
            &r["ticket"]["status"],
            &r["ticket"]["priority"],
            &r["ticket"]["assignedTo"],
            &r["ticket"]["resolvedAt"]
        ),
        (
            &json!("IN_PROGRESS"),
            &json!("URGENT"),
            &Value::Null,
            &Value::Null
        ),
        "{r}"
    );
    let r = update_ticket(&app, &partner, json!({ "id": id, "status": "CLOSED" })).await;
    assert_eq!(r["ticket"]["status"], "CLOSED", "{r}");
    // Closed is final.
    for change in [
        json!({ "status": "OPEN" }),
        json!({ "priority": "LOW" }),
        json!({ "status": "CLOSED" }),
    ] {
        let mut input = change.clone();
        input["id"] = id.clone();
        let r = update_ticket(&app, &partner, input).await;
        assert_eq!(
            r["userErrors"][0]["code"], "INVALID_TRANSITION",
            "{change}: {r}"
        );
    }
    assert_eq!(ticket_rows(&app, t.id).await.1, 6, "one event per change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tickets_and_ticket_changes_write_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let other = app.tenant("Winery B").await;
    let theirs = app
        .page_ids(&other.admin_key, "customers", "")
        .await
        .remove(0);
    let their_ticket = app
        .page_ids(&other.admin_key, "tickets", "")
        .await
        .remove(0);
    let mine = app.page_ids(&t.admin_key, "tickets", "").await.remove(0);
    let before = ticket_rows(&app, t.id).await;
    let others_before = ticket_rows(&app, other.id).await;
    let long = "x".repeat(301);
    for (input, field, code) in [
        (
            json!({ "subject": "  " }),
            vec!["input", "subject"],
            "INVALID",
        ),
        (
            json!({ "subject": long }),
            vec!["input", "subject"],
            "INVALID",
        ),
        (
            json!({ "subject": "s", "customerEmail": "nope" }),
            vec!["input", "customerEmail"],
            "INVALID",
        ),
        (
            json!({ "subject": "s", "description": "a\u{0}b" }),
            vec!["input", "description"],
            "BAD_USER_INPUT",
        ),
        (
            json!({ "subject": "s", "customerId": theirs }),
            vec!["input", "customerId"],
            "NOT_FOUND",
        ),
    ] {
        let r = app
            .gql(&t.admin_key, OPEN_TICKET, json!({ "input": input }))
            .await;
        assert_eq!(
            refusal(&r, "openTicket"),
            (&json!(field), &json!(code)),
            "{input}: {r}"
        );
    }
    for (input, code) in [
        (
            json!({ "id": their_ticket, "status": "CLOSED" }),
            "NOT_FOUND",
        ),
        (json!({ "id": mine }), "INVALID"),
        (
            json!({ "id": mine, "status": "OPEN", "assignedTo": long }),
            "INVALID",
        ),
    ] {
        let r = update_ticket(&app, &t.admin_key, input.clone()).await;
        assert_eq!(r["userErrors"][0]["code"], code, "{input}: {r}");
    }
    // Not a priority, not an id: refused before anything runs.
    let r = app
        .gql(
            &t.admin_key,
            OPEN_TICKET,
            json!({ "input": { "subject": "s", "priority": "SOON" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let r = app
        .gql(
            &t.admin_key,
            UPDATE_TICKET,
            json!({ "input": { "id": "nope", "status": "OPEN" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let analyst = app.key(&t, Role::Analyst).await;
    let r = app
        .gql(
            &analyst,
            OPEN_TICKET,
            json!({ "input": { "subject": "s" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    assert_eq!(ticket_rows(&app, t.id).await, before, "nothing written");
    assert_eq!(ticket_rows(&app, other.id).await, others_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_tickets_get_consecutive_numbers_and_racing_changes_apply_one_at_a_time() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Support").await;
    let answers = futures_util::future::join_all((0..10).map(|n| {
        app.gql(
            &t.admin_key,
            OPEN_TICKET,
            json!({ "input": { "subject": format!("Issue {n}") } }),
        )
    }))
    .await;
    let mut numbers: Vec<String> = answers
        .iter()
        .map(|r| {
            r["data"]["openTicket"]["ticket"]["ticketNumber"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    numbers.sort();
    let want: Vec<String> = (1..=10).map(|n| format!("TCK-{n:04}")).collect();
    assert_eq!(numbers, want);
    // Resolving and closing at once, one at a time under the row's lock: exactly one
    // close applies (closed is final: every later change is refused), and a resolve
    // applies only before it.
    let id = answers[0]["data"]["openTicket"]["ticket"]["id"].clone();
    let changes = [
        "RESOLVED", "CLOSED", "RESOLVED", "CLOSED", "RESOLVED", "CLOSED",
    ];
    let results = futures_util::future::join_all(
        changes
            .iter()
            .map(|s| update_ticket(&app, &t.admin_key, json!({ "id": id, "status": s }))),
    )
    .await;
    let closed_first = results
        .iter()
        .zip(changes)
        .filter(|(r, s)| *s == "CLOSED" && r["ticket"]["status"] == "CLOSED")
        .count();
    assert_eq!(closed_first, 1, "{results:?}");
    for r in &results {
        assert!(
            r["ticket"].is_object() || r["userErrors"][0]["code"] == "INVALID_TRANSITION",
            "{r}"
        );
    }
    let (rows, events) = ticket_rows(&app, t.id).await;
    let applied = results.iter().filter(|r| r["ticket"].is_object()).count() as i64;
    assert_eq!(events, 10 + applied);
    assert!(rows.iter().any(|r| r.contains("\"status\":\"closed\"")));
}

const BOOK: &str = "mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) {
    appointment { id date time durationMinutes status clientName clientEmail }
    userErrors { field code message } } }";
const CHANGE_APPOINTMENT: &str = "mutation($id: ID!, $status: AppointmentStatus!) {
    changeAppointment(input: { id: $id, status: $status }) { appointment { id status } userErrors { field code } } }";

/// `tenant`'s appointments and their `appointment.changed` events.
async fn appointment_rows(app: &TestApp, tenant: Uuid) -> (Vec<String>, i64) {
    app.rows_and_events("rendez_vous", tenant, "appointment.changed")
        .await
}

async fn book(app: &TestApp, key: &str, date: &str, time: &str, minutes: i32) -> Value {
    let input =
        json!({ "clientName": "Claire", "date": date, "time": time, "durationMinutes": minutes });
    app.gql(key, BOOK, json!({ "input": input })).await["data"]["bookAppointment"].clone()
}

async fn change_appointment(app: &TestApp, key: &str, id: &Value, status: &str) -> Value {
    app.gql(
        key,
        CHANGE_APPOINTMENT,
        json!({ "id": id, "status": status }),
    )
    .await["data"]["changeAppointment"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appointments_do_not_overlap_and_move_along_their_lifecycle() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Tasting room").await;
    let partner = app.key(&t, Role::Partner).await;
    let r = app
        .gql(
            &partner,
            BOOK,
            json!({ "input": { "clientName": "Claire", "clientEmail": "Claire@Example.com",
                "date": "2026-12-01", "time": "10:00:00" } }),
        )
        .await;
    let first = r["data"]["bookAppointment"]["appointment"].clone();
    assert_eq!(
        first,
        json!({ "id": first["id"], "date": "2026-12-01", "time": "10:00:00", "durationMinutes": 30,
                "status": "PENDING", "clientName": "Claire", "clientEmail": "claire@example.com" }),
        "{r}"
    );
    // Back to back is fine; overlapping is not; another day is another day.
    let next = book(&app, &partner, "2026-12-01", "10:30:00", 60).await;
    assert_eq!(next["appointment"]["status"], "PENDING", "{next}");
    for (time, minutes) in [
        ("10:15:00", 15),
        ("09:45:00", 30),
        ("11:29:00", 5),
        ("09:00:00", 240),
    ] {
        let r = book(&app, &partner, "2026-12-01", time, minutes).await;
        assert_eq!(
            (&r["userErrors"][0]["code"], &r["userErrors"][0]["field"]),
            (&json!("CONFLICT"), &json!(["input", "time"])),
            "{time} for {minutes}: {r}"
        );
    }
    let r = book(&app, &partner, "2026-12-02", "10:15:00", 15).await;
    assert_eq!(r["appointment"]["status"], "PENDING", "{r}");
    // Cancelled, its time is free again.
    let id = first["id"].clone();
    let r = change_appointment(&app, &partner, &id, "CANCELLED").await;
    assert_eq!(r["appointment"]["status"], "CANCELLED", "{r}");
    let r = book(&app, &partner, "2026-12-01", "10:15:00", 15).await;
    assert_eq!(r["appointment"]["status"], "PENDING", "{r}");

    // pending → confirmed → completed; then final.
    let id = next["appointment"]["id"].clone();
    let r = change_appointment(&app, &partner, &id, "NO_SHOW").await;
    assert_eq!(
        r["userErrors"][0]["code"], "INVALID_TRANSITION",
        "a pending one: {r}"
    );
    for status in ["CONFIRMED", "COMPLETED"] {
        let r = change_appointment(&app, &partner, &id, status).await;
        assert_eq!(r["appointment"]["status"], status, "{r}");
    }
    for status in ["CANCELLED", "PENDING", "NO_SHOW"] {
        let r = change_appointment(&app, &partner, &id, status).await;
        assert_eq!(
            r["userErrors"][0]["code"], "INVALID_TRANSITION",
            "{status}: {r}"
        );
    }
    let (rows, events) = appointment_rows(&app, t.id).await;
    assert_eq!((rows.len(), events), (4, 7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bookings_and_appointment_changes_write_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let other = app.tenant("Winery B").await;
    let theirs = app
        .page_ids(&other.admin_key, "customers", "")
        .await
        .remove(0);
    let their_appointment = app
        .page_ids(&other.admin_key, "appointments", "")
        .await
        .remove(0);
    let before = appointment_rows(&app, t.id).await;
    let base = json!({ "clientName": "Claire", "date": "2027-01-05", "time": "09:00:00" });
    let with = |extra: Value| {
        let mut input = base.clone();
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        input
    };
    for (input, field, code) in [
        (with(json!({ "clientName": " " })), "clientName", "INVALID"),
        (
            with(json!({ "clientEmail": "claire" })),
            "clientEmail",
            "INVALID",
        ),
        (
            with(json!({ "durationMinutes": 0 })),
            "durationMinutes",
            "INVALID",
        ),
        (
            with(json!({ "durationMinutes": 481 })),
            "durationMinutes",
            "INVALID",
        ),
        (
            with(json!({ "notes": "a\u{0}" })),
            "notes",
            "BAD_USER_INPUT",
        ),
        (
            with(json!({ "customerId": theirs })),
            "customerId",
            "NOT_FOUND",
        ),
    ] {
        let r = app.gql(&t.admin_key, BOOK, json!({ "input": input })).await;
        assert_eq!(
            refusal(&r, "bookAppointment"),
            (&json!(["input", field]), &json!(code)),
            "{input}: {r}"
        );
    }
    for input in [
        with(json!({ "date": "2027-02-30" })),
        with(json!({ "time": "25:00:00" })),
    ] {
        let r = app.gql(&t.admin_key, BOOK, json!({ "input": input })).await;
        assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    }
    let r = change_appointment(&app, &t.admin_key, &json!(their_appointment), "CONFIRMED").await;
    assert_eq!(r["userErrors"][0]["code"], "NOT_FOUND", "{r}");
    let analyst = app.key(&t, Role::Analyst).await;
    let r = app.gql(&analyst, BOOK, json!({ "input": base })).await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    assert_eq!(
        appointment_rows(&app, t.id).await,
        before,
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_bookings_of_one_slot_make_one_appointment() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Tasting room").await;
    let same = futures_util::future::join_all(
        (0..8).map(|_| book(&app, &t.admin_key, "2026-12-03", "15:00:00", 45)),
    )
    .await;
    let booked = same.iter().filter(|r| r["appointment"].is_object()).count();
    assert_eq!(booked, 1, "{same:?}");
    assert!(same
        .iter()
        .all(|r| r["appointment"].is_object() || r["userErrors"][0]["code"] == "CONFLICT"));
    // Distinct slots of the same day, at once: all of them.
    let slots: Vec<String> = (8..14).map(|h| format!("{h:02}:00:00")).collect();
    let distinct = futures_util::future::join_all(
        slots
            .iter()
            .map(|slot| book(&app, &t.admin_key, "2026-12-03", slot, 60)),
    )
    .await;
    assert!(
        distinct.iter().all(|r| r["appointment"].is_object()),
        "{distinct:?}"
    );
    let (rows, events) = appointment_rows(&app, t.id).await;
    assert_eq!((rows.len(), events), (7, 7));
}

const RECORD_CALL: &str = "mutation($input: RecordCallInput!) { recordCall(input: $input) {
    call { id provider direction agentType status durationSeconds summary customerId }
    userErrors { field code message } } }";

/// `tenant`'s calls and their `call.recorded` events.
async fn call_rows(app: &TestApp, tenant: Uuid) -> (Vec<String>, i64) {
    app.rows_and_events("call_logs", tenant, "call.recorded")
        .await
}

async fn report(app: &TestApp, key: &str, input: Value) -> Value {
    app.gql(key, RECORD_CALL, json!({ "input": input })).await["data"]["recordCall"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_of_one_call_update_it_and_never_move_it_back() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Calls").await;
    let partner = app.key(&t, Role::Partner).await;
    let call = |status: &str| json!({ "provider": "VAPI", "providerCallId": "call_42", "direction": "INBOUND", "status": status });
    let ringing = report(&app, &partner, call("RINGING")).await;
    assert_eq!(ringing["call"]["status"], "RINGING", "{ringing}");
    let id = ringing["call"]["id"].clone();
    let mut in_progress = call("IN_PROGRESS");
    in_progress["agentType"] = json!("SUPPORT");
    let r = report(&app, &partner, in_progress).await;
    assert_eq!(
        (
            &r["call"]["id"],
            &r["call"]["status"],
            &r["call"]["agentType"]
        ),
        (&id, &json!("IN_PROGRESS"), &json!("support")),
        "{r}"
    );
    let mut completed = call("COMPLETED");
    completed["durationSeconds"] = json!(185);
    completed["summary"] = json!("Damaged bottle reported");
    let r = report(&app, &partner, completed).await;
    assert_eq!(
        (
            &r["call"]["status"],
            &r["call"]["durationSeconds"],
            &r["call"]["agentType"]
        ),
        (&json!("COMPLETED"), &json!(185), &json!("support")),
        "what a report leaves out stays: {r}"
    );
    // A late report: the call stays completed.
    let r = report(&app, &partner, call("RINGING")).await;
    assert_eq!(
        (&r["call"]["id"], &r["call"]["status"]),
        (&id, &json!("COMPLETED")),
        "{r}"
    );
    // The same id from another provider, and a report without an id, are other calls.
    let mut twilio = call("COMPLETED");
    twilio["provider"] = json!("TWILIO");
    assert_ne!(report(&app, &partner, twilio).await["call"]["id"], id);
    for _ in 0..2 {
        let r = report(
            &app,
            &partner,
            json!({ "provider": "VAPI", "direction": "OUTBOUND", "status": "NO_ANSWER" }),
        )
        .await;
        assert_eq!(r["call"]["status"], "NO_ANSWER", "{r}");
    }
    let (rows, events) = call_rows(&app, t.id).await;
    assert_eq!((rows.len(), events), (4, 7));
    let listed = app.page_ids(&t.admin_key, "calls", "").await;
    assert_eq!(listed.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_call_reports_write_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let other = app.tenant("Winery B").await;
    let theirs = app
        .page_ids(&other.admin_key, "customers", "")
        .await
        .remove(0);
    let before = call_rows(&app, t.id).await;
    let base = json!({ "provider": "RETELL", "providerCallId": "r1", "direction": "INBOUND", "status": "COMPLETED" });
    let with = |extra: Value| {
        let mut input = base.clone();
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        input
    };
    for (input, field, code) in [
        (
            with(json!({ "durationSeconds": -1 })),
            "durationSeconds",
            "INVALID",
        ),
        (
            with(json!({ "recordingUrl": "ftp://x/y.mp3" })),
            "recordingUrl",
            "INVALID",
        ),
        (
            with(json!({ "providerCallId": "" })),
            "providerCallId",
            "INVALID",
        ),
        (
            with(json!({ "startedAt": "2026-11-20T10:00:00Z", "endedAt": "2026-11-20T09:00:00Z" })),
            "endedAt",
            "INVALID",
        ),
        (
            with(json!({ "summary": "a\u{0}" })),
            "summary",
            "BAD_USER_INPUT",
        ),
        (
            with(json!({ "customerId": theirs })),
            "customerId",
            "NOT_FOUND",
        ),
    ] {
        let r = app
            .gql(&t.admin_key, RECORD_CALL, json!({ "input": input.clone() }))
            .await;
        assert_eq!(
            refusal(&r, "recordCall"),
            (&json!(["input", field]), &json!(code)),
            "{input}: {r}"
        );
    }
    let r = app
        .gql(
            &t.admin_key,
            RECORD_CALL,
            json!({ "input": with(json!({ "status": "HUNG_UP" })) }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let analyst = app.key(&t, Role::Analyst).await;
    let r = app
        .gql(&analyst, RECORD_CALL, json!({ "input": base }))
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    assert_eq!(call_rows(&app, t.id).await, before, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_reports_of_one_call_make_one_row_at_its_furthest_status() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Calls").await;
    let statuses = [
        "QUEUED",
        "RINGING",
        "COMPLETED",
        "IN_PROGRESS",
        "RINGING",
        "QUEUED",
        "IN_PROGRESS",
        "RINGING",
    ];
    let answers = futures_util::future::join_all(statuses.iter().map(|status| {
        report(
            &app,
            &t.admin_key,
            json!({ "provider": "TWILIO", "providerCallId": "CA123", "direction": "OUTBOUND", "status": status }),
        )
    }))
    .await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|r| {
            r["call"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    let (rows, events) = call_rows(&app, t.id).await;
    assert_eq!((rows.len(), events), (1, 8));
    assert!(rows[0].contains("\"status\":\"completed\""), "{rows:?}");
}

const RECORD_PROSPECT: &str =
    "mutation($input: RecordProspectInput!) { recordProspect(input: $input) {
    prospect { id name email status qualificationScore source callId notes }
    userErrors { field code message } } }";
const UPDATE_PROSPECT: &str =
    "mutation($input: UpdateProspectInput!) { updateProspect(input: $input) {
    prospect { id status qualificationScore notes } userErrors { field code } } }";

/// `tenant`'s prospects and their `prospect.changed` events.
async fn prospect_rows(app: &TestApp, tenant: Uuid) -> (Vec<String>, i64) {
    app.rows_and_events("prospects", tenant, "prospect.changed")
        .await
}

async fn update_prospect(app: &TestApp, key: &str, input: Value) -> Value {
    app.gql(key, UPDATE_PROSPECT, json!({ "input": input }))
        .await["data"]["updateProspect"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prospects_are_recorded_then_qualified_contacted_and_converted_once() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Prospecting").await;
    let partner = app.key(&t, Role::Partner).await;
    let call = report(
        &app,
        &partner,
        json!({ "provider": "VAPI", "direction": "INBOUND", "status": "COMPLETED", "agentType": "QUALIFICATION" }),
    )
    .await["call"]["id"]
        .clone();
    let r = app
        .gql(
            &partner,
            RECORD_PROSPECT,
            json!({ "input": { "name": "Hugo", "email": "Hugo@Corp.example", "qualificationScore": 64,
                "source": "WEB", "callId": call, "need": "Corporate gifts" } }),
        )
        .await;
    let prospect = r["data"]["recordProspect"]["prospect"].clone();
    assert_eq!(
        prospect,
        json!({ "id": prospect["id"], "name": "Hugo", "email": "hugo@corp.example", "status": "NEW",
                "qualificationScore": 64, "source": "web", "callId": call, "notes": null }),
        "{r}"
    );
    let id = prospect["id"].clone();
    let r = update_prospect(
        &app,
        &partner,
        json!({ "id": id, "status": "QUALIFIED", "qualificationScore": 82 }),
    )
    .await;
    assert_eq!(
        (
            &r["prospect"]["status"],
            &r["prospect"]["qualificationScore"]
        ),
        (&json!("QUALIFIED"), &json!(82)),
        "{r}"
    );
    let r = update_prospect(
        &app,
        &partner,
        json!({ "id": id, "notes": "Wants 200 boxes" }),
    )
    .await;
    assert_eq!(
        (&r["prospect"]["status"], &r["prospect"]["notes"]),
        (&json!("QUALIFIED"), &json!("Wants 200 boxes")),
        "{r}"
    );
    for status in ["CONTACTED", "CONVERTED"] {
        let r = update_prospect(&app, &partner, json!({ "id": id, "status": status })).await;
        assert_eq!(r["prospect"]["status"], status, "{r}");
    }
    for change in [
        json!({ "status": "QUALIFIED" }),
        json!({ "qualificationScore": 10 }),
        json!({ "notes": null }),
    ] {
        let mut input = change.clone();
        input["id"] = id.clone();
        let r = update_prospect(&app, &partner, input).await;
        assert_eq!(
            r["userErrors"][0]["code"], "INVALID_TRANSITION",
            "converted is final: {change}: {r}"
        );
    }
    // A new prospect cannot jump to converted.
    let r = app
        .gql(
            &partner,
            RECORD_PROSPECT,
            json!({ "input": { "name": "Ines" } }),
        )
        .await;
    let other = r["data"]["recordProspect"]["prospect"]["id"].clone();
    let r = update_prospect(
        &app,
        &partner,
        json!({ "id": other, "status": "CONVERTED" }),
    )
    .await;
    assert_eq!(r["userErrors"][0]["code"], "INVALID_TRANSITION", "{r}");
    let listed = app
        .page_ids(&t.admin_key, "prospects", ", status: CONVERTED")
        .await;
    assert_eq!(listed, vec![id.as_str().unwrap().to_owned()]);
    let (rows, events) = prospect_rows(&app, t.id).await;
    assert_eq!((rows.len(), events), (2, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_prospects_and_prospect_changes_write_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let other = app.tenant("Winery B").await;
    let their_prospect = app
        .page_ids(&other.admin_key, "prospects", "")
        .await
        .remove(0);
    let mine = app.page_ids(&t.admin_key, "prospects", "").await.remove(0);
    let their_call = app.page_ids(&other.admin_key, "calls", "").await.remove(0);
    let before = prospect_rows(&app, t.id).await;
    for (input, field, code) in [
        (json!({ "name": "" }), "name", "INVALID"),
        (json!({ "name": "P", "email": "nope" }), "email", "INVALID"),
        (
            json!({ "name": "P", "qualificationScore": 101 }),
            "qualificationScore",
            "INVALID",
        ),
        (
            json!({ "name": "P", "need": "x".repeat(2001) }),
            "need",
            "INVALID",
        ),
        (
            json!({ "name": "P", "callId": their_call }),
            "callId",
            "NOT_FOUND",
        ),
    ] {
        let r = app
            .gql(&t.admin_key, RECORD_PROSPECT, json!({ "input": input }))
            .await;
        let error = &r["data"]["recordProspect"]["userErrors"][0];
        assert_eq!(
            (&error["field"], &error["code"]),
            (&json!(["input", field]), &json!(code)),
            "{input}: {r}"
        );
    }
    for (input, code) in [
        (json!({ "id": mine }), "INVALID"),
        (json!({ "id": mine, "qualificationScore": -1 }), "INVALID"),
        (
            json!({ "id": their_prospect, "status": "QUALIFIED" }),
            "NOT_FOUND",
        ),
    ] {
        let r = update_prospect(&app, &t.admin_key, input.clone()).await;
        assert_eq!(r["userErrors"][0]["code"], code, "{input}: {r}");
    }
    let r = app
        .gql(
            &t.admin_key,
            RECORD_PROSPECT,
            json!({ "input": { "name": "P", "source": "FAX" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let analyst = app.key(&t, Role::Analyst).await;
    let r = app
        .gql(
            &analyst,
            RECORD_PROSPECT,
            json!({ "input": { "name": "P" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    assert_eq!(prospect_rows(&app, t.id).await, before, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_prospect_changes_convert_once() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Prospecting").await;
    let r = app
        .gql(
            &t.admin_key,
            RECORD_PROSPECT,
            json!({ "input": { "name": "Hugo" } }),
        )
        .await;
    let id = r["data"]["recordProspect"]["prospect"]["id"].clone();
    let r = update_prospect(
        &app,
        &t.admin_key,
        json!({ "id": id, "status": "QUALIFIED" }),
    )
    .await;
    assert_eq!(r["prospect"]["status"], "QUALIFIED");
    // Converting and disqualifying at once, under the row's lock: one conversion at most,
    // and once converted nothing else applies.
    let changes = [
        "CONVERTED",
        "UNQUALIFIED",
        "CONVERTED",
        "CONTACTED",
        "CONVERTED",
        "UNQUALIFIED",
    ];
    let results = futures_util::future::join_all(
        changes
            .iter()
            .map(|s| update_prospect(&app, &t.admin_key, json!({ "id": id, "status": s }))),
    )
    .await;
    let converted = results
        .iter()
        .filter(|r| r["prospect"]["status"] == "CONVERTED")
        .count();
    assert!(converted <= 1, "{results:?}");
    for r in &results {
        assert!(
            r["prospect"].is_object() || r["userErrors"][0]["code"] == "INVALID_TRANSITION",
            "{r}"
        );
    }
    let applied = results.iter().filter(|r| r["prospect"].is_object()).count() as i64;
    let (rows, events) = prospect_rows(&app, t.id).await;
    assert_eq!((rows.len() as i64, events), (1, 2 + applied));
}

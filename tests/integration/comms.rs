//! Channels (never their credentials), the message log and the voice agents' records:
//! calls, appointments, tickets and prospects, each the tenant's own rows newest first, paged without gaps or
//! repeats; bad paging input is refused.

use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::common::{error_code, TestApp};

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

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

mod appointments;
mod calls;
mod channels;
mod prospects;
mod tickets;

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

pub(crate) const SECRET_KEY: &str =
    "5f1e0c8a9b2d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f";

const CONFIGURE: &str = "mutation($input: ConfigureChannelInput!) { configureChannel(input: $input) {
    channelConfiguration { id channel provider enabled configured configPublic assistantId fromAddress fromName }
    userErrors { field code message } } }";

/// A server that can seal credentials.
async fn app_with_secret_key() -> TestApp {
    TestApp::start_with(ServeArgs {
        secret_key: Some(SECRET_KEY.parse().unwrap()),
        ..ServeArgs::default()
    })
    .await
}

const OPEN_TICKET: &str = "mutation($input: OpenTicketInput!) { openTicket(input: $input) {
    ticket { id ticketNumber subject channel priority status customerId assignedTo resolvedAt }
    userErrors { field code message } } }";

const UPDATE_TICKET: &str = "mutation($input: UpdateTicketInput!) { updateTicket(input: $input) {
    ticket { id status priority assignedTo resolvedAt } userErrors { field code message } } }";

const BOOK: &str = "mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) {
    appointment { id date time durationMinutes status clientName clientEmail }
    userErrors { field code message } } }";

const CHANGE_APPOINTMENT: &str = "mutation($id: ID!, $status: AppointmentStatus!) {
    changeAppointment(input: { id: $id, status: $status }) { appointment { id status } userErrors { field code } } }";

const RECORD_CALL: &str = "mutation($input: RecordCallInput!) { recordCall(input: $input) {
    call { id provider direction agentType status durationSeconds summary customerId }
    userErrors { field code message } } }";

async fn report(app: &TestApp, key: &str, input: Value) -> Value {
    app.gql(key, RECORD_CALL, json!({ "input": input })).await["data"]["recordCall"].clone()
}

const RECORD_PROSPECT: &str =
    "mutation($input: RecordProspectInput!) { recordProspect(input: $input) {
    prospect { id name email status qualificationScore source callId notes }
    userErrors { field code message } } }";

const UPDATE_PROSPECT: &str =
    "mutation($input: UpdateProspectInput!) { updateProspect(input: $input) {
    prospect { id status qualificationScore notes } userErrors { field code } } }";

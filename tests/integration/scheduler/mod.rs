//! The scheduler with a moved clock (no sleeping): appointment reminders, monthly status
//! notices, expiration warnings and retention, each once per period whatever the number
//! of instances ticking, sent through a real SMTP server.

use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel_async::SimpleAsyncConnection;
use growthgraph::db::TenantDb;
use growthgraph::domain::messages::{ops, providers};
use growthgraph::scheduler::{self, Clock, ManualClock};
use serde_json::{json, Value};

use crate::common::{user_error_code, TestApp, TestTenant};
use crate::comms::SECRET_KEY;
use crate::messages::SmtpSink;

mod workflows;

async fn setup(name: &str) -> (TestApp, TestTenant, SmtpSink, providers::Providers) {
    let sink = SmtpSink::start().await;
    let app = TestApp::start_with(growthgraph::config::ServeArgs {
        secret_key: Some(SECRET_KEY.parse().unwrap()),
        ..Default::default()
    })
    .await;
    let t = app.bare_tenant(name).await;
    let r = app.gql(&t.admin_key, "mutation { configureChannel(input: { channel: EMAIL, provider: SMTP, enabled: true, fromAddress: \"club@sched.example\" }) { userErrors { code } } }", json!({})).await;
    assert_eq!(r["data"]["configureChannel"]["userErrors"], json!([]));
    let providers = providers::Providers::new(providers::ProviderSettings {
        smtp_url: Some(sink.url()),
        ..Default::default()
    });
    (app, t, sink, providers)
}

async fn template(
    app: &TestApp,
    t: &TestTenant,
    kind: &str,
    subject: &str,
    text: &str,
    variables: Value,
) {
    let r = app.gql(&t.admin_key, "mutation($i: SaveCommunicationTemplateInput!) { saveCommunicationTemplate(input: $i) { userErrors { code message } } }",
        json!({ "i": { "templateType": kind, "channel": "EMAIL", "name": kind, "subject": subject, "textContent": text, "variables": variables } })).await;
    assert_eq!(
        r["data"]["saveCommunicationTemplate"]["userErrors"],
        json!([]),
        "{r}"
    );
}

async fn tick(app: &TestApp, t: &TestTenant, at: DateTime<Utc>) -> Vec<(&'static str, Value)> {
    scheduler::tick(&TenantDb::new(app.pool.clone(), t.id), at)
        .await
        .unwrap()
}

async fn send_due(app: &TestApp, t: &TestTenant, providers: &providers::Providers) -> usize {
    let key = SECRET_KEY.parse().unwrap();
    ops::run_due(
        &TenantDb::new(app.pool.clone(), t.id),
        providers,
        Some(&key),
        100,
    )
    .await
    .unwrap()
}

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

async fn subjects(app: &TestApp, t: &TestTenant) -> Vec<(String, String)> {
    let r = app
        .gql(
            &t.admin_key,
            "{ messages(first: 50) { nodes { recipient subject status } } }",
            json!({}),
        )
        .await;
    let mut found: Vec<(String, String)> = r["data"]["messages"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["recipient"].as_str().unwrap().to_owned(),
                format!(
                    "{} {}",
                    n["subject"].as_str().unwrap_or(""),
                    n["status"].as_str().unwrap()
                ),
            )
        })
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_appointment_is_reminded_once_and_again_when_rescheduled() {
    let (app, t, sink, providers) = setup("Reminders").await;
    template(
        &app,
        &t,
        "APPOINTMENT_REMINDER",
        "Reminder: {{ service }} on {{ date }}",
        "Dear {{ name }}, see you on {{ date }} at {{ time }}.",
        json!(["name", "date", "time", "service"]),
    )
    .await;
    let book = "mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) { appointment { id } userErrors { code } } }";
    let mut ids = Vec::new();
    for (name, email, time) in [
        ("Ann", "ann@sched.example", "15:00:00"),
        ("Bob", "bob@sched.example", "16:00:00"),
    ] {
        let r = app
            .gql(
                &t.admin_key,
                book,
                json!({ "i": { "clientName": name, "clientEmail": email,
            "date": "2027-03-10", "time": time, "serviceType": "tasting" } }),
            )
            .await;
        ids.push(
            r["data"]["bookAppointment"]["appointment"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_owned(),
        );
    }
    let change = "mutation($id: ID!, $s: AppointmentStatus!) { changeAppointment(input: { id: $id, status: $s }) { userErrors { code } } }";
    app.gql(
        &t.admin_key,
        change,
        json!({ "id": ids[0], "s": "CONFIRMED" }),
    )
    .await;
    // Bob's is cancelled: never reminded.
    app.gql(
        &t.admin_key,
        change,
        json!({ "id": ids[1], "s": "CONFIRMED" }),
    )
    .await;
    app.gql(
        &t.admin_key,
        change,
        json!({ "id": ids[1], "s": "CANCELLED" }),
    )
    .await;

    let clock = ManualClock::new(at(2027, 3, 8, 12, 0));
    assert!(tick(&app, &t, clock.now())
        .await
        .iter()
        .all(|(task, _)| *task != "appointment_reminders"));
    clock.set(at(2027, 3, 9, 16, 0)); // 23 h before
    let (a, b) = tokio::join!(tick(&app, &t, clock.now()), tick(&app, &t, clock.now()));
    let reminded: i64 = a
        .iter()
        .chain(b.iter())
        .filter(|(task, _)| *task == "appointment_reminders")
        .map(|(_, r)| r["queued"].as_i64().unwrap())
        .sum();
    assert_eq!(reminded, 1, "two instances ticking remind once");
    clock.advance(Duration::hours(2));
    tick(&app, &t, clock.now()).await;
    assert_eq!(send_due(&app, &t, &providers).await, 1);
    let mail = sink.received();
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0].contains("Dear Ann, see you on 2027-03-10 at 15:00."),
        "{}",
        mail[0]
    );
    assert!(mail[0].contains("Subject: Reminder: tasting on 2027-03-10"));

    // Rescheduled: reminded again before the new time, once.
    let r = app.gql(&t.admin_key, "mutation($id: ID!) { rescheduleAppointment(input: { id: $id, date: \"2027-03-20\", time: \"10:30:00\" }) { appointment { date time } userErrors { code } } }", json!({ "id": ids[0] })).await;
    assert_eq!(
        r["data"]["rescheduleAppointment"]["userErrors"],
        json!([]),
        "{r}"
    );
    clock.set(at(2027, 3, 19, 9, 0)); // 25.5 h before: not yet
    tick(&app, &t, clock.now()).await;
    assert_eq!(send_due(&app, &t, &providers).await, 0);
    clock.set(at(2027, 3, 19, 11, 0));
    tick(&app, &t, clock.now()).await;
    tick(&app, &t, clock.now() + Duration::hours(1)).await;
    assert_eq!(send_due(&app, &t, &providers).await, 1);
    assert_eq!(sink.received().len(), 2);
    let r = app.gql(&t.admin_key, "{ appointments(filter: { from: \"2027-03-15\", status: CONFIRMED }) { nodes { id date } } }", json!({})).await;
    assert_eq!(
        r["data"]["appointments"]["nodes"],
        json!([{ "id": ids[0], "date": "2027-03-20" }])
    );
    let r = app
        .gql(
            &t.admin_key,
            "{ appointments(filter: { to: \"2027-03-15\" }) { nodes { id status } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["appointments"]["nodes"],
        json!([{ "id": ids[1], "status": "CANCELLED" }])
    );
    // Another tenant's key finds no such appointment; a cancelled one cannot be rescheduled.
    let other = app.bare_tenant("Reminders Other").await;
    let r = app.gql(&other.admin_key, "mutation($id: ID!) { rescheduleAppointment(input: { id: $id, date: \"2027-03-21\", time: \"10:30:00\" }) { userErrors { code } } }", json!({ "id": ids[0] })).await;
    assert_eq!(user_error_code(&r, "rescheduleAppointment"), "NOT_FOUND");
    let r = app.gql(&t.admin_key, "mutation($id: ID!) { rescheduleAppointment(input: { id: $id, date: \"2027-03-21\", time: \"10:30:00\" }) { userErrors { code } } }", json!({ "id": ids[1] })).await;
    assert_eq!(
        user_error_code(&r, "rescheduleAppointment"),
        "INVALID_TRANSITION"
    );
}

async fn member(
    app: &TestApp,
    t: &TestTenant,
    email: &str,
    expires: DateTime<Utc>,
    points: i64,
) -> String {
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "INSERT INTO customers (tenant_id, email, name, points_balance, points_lifetime, is_club_member)
           VALUES ('{t}', '{email}', '{email}', {points}, {points}, true);
         INSERT INTO club_enrollments (tenant_id, customer_id, program_id, stage_id, status, enrolled_at, expires_at)
           SELECT '{t}', c.id, s.program_id, s.id, 'active', '{expires}'::timestamptz - interval '1 year', '{expires}'
           FROM customers c, club_stages s WHERE c.tenant_id = '{t}' AND c.email = '{email}' AND s.tenant_id = '{t}';",
        t = t.id, expires = expires.to_rfc3339()
    )).await.unwrap();
    let r = app
        .gql(
            &t.admin_key,
            "query($e: String) { customer(email: $e) { id } }",
            json!({ "e": email }),
        )
        .await;
    r["data"]["customer"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn club_notices_go_once_per_member_and_period_and_respect_preferences() {
    let (app, t, sink, providers) = setup("Notices").await;
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "INSERT INTO club_programs (tenant_id, name, expiration_warning_days) VALUES ('{t}', 'Club', 20);
         INSERT INTO club_stages (tenant_id, program_id, name, stage_order, discount_percentage, duration_months)
           SELECT '{t}', id, 'Gold', 1, 10, 12 FROM club_programs WHERE tenant_id = '{t}';",
        t = t.id
    )).await.unwrap();
    template(
        &app,
        &t,
        "MONTHLY_STATUS",
        "{{ month }}: {{ points }} points",
        "Your {{ stage }} membership runs to {{ expiresAt }}.",
        json!(["month", "points", "stage", "expiresAt"]),
    )
    .await;
    template(
        &app,
        &t,
        "EXPIRATION_WARNING",
        "{{ daysLeft }} days left",
        "Your {{ stage }} membership ends on {{ expiresAt }}.",
        json!(["daysLeft", "stage", "expiresAt"]),
    )
    .await;
    member(&app, &t, "ann@notices.example", at(2027, 12, 1, 0, 0), 120).await;
    member(&app, &t, "cy@notices.example", at(2027, 4, 15, 0, 0), 40).await;
    let bob = member(&app, &t, "bob@notices.example", at(2027, 12, 1, 0, 0), 80).await;
    let r = app.gql(&t.admin_key, "mutation($c: ID!) { setCommunicationPreferences(input: { customerId: $c, preferences: [{ channel: EMAIL, type: MONTHLY_STATUS, optedIn: false }] }) { userErrors { code } } }", json!({ "c": bob })).await;
    assert_eq!(
        r["data"]["setCommunicationPreferences"]["userErrors"],
        json!([])
    );

    // Before 09:00 on the 1st: nothing; then two instances tick: one run of the month.
    assert!(tick(&app, &t, at(2027, 4, 1, 8, 0))
        .await
        .iter()
        .all(|(task, _)| *task != "monthly_status"));
    let (a, b) = tokio::join!(
        tick(&app, &t, at(2027, 4, 1, 9, 5)),
        tick(&app, &t, at(2027, 4, 1, 9, 5))
    );
    let runs: Vec<&Value> = a
        .iter()
        .chain(b.iter())
        .filter(|(task, _)| *task == "monthly_status")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(runs, vec![&json!({ "queued": 3, "skipped": 0 })]);
    assert!(tick(&app, &t, at(2027, 4, 2, 9, 0))
        .await
        .iter()
        .all(|(task, _)| *task != "monthly_status"));
    send_due(&app, &t, &providers).await;
    assert_eq!(
        subjects(&app, &t).await,
        vec![
            (
                "ann@notices.example".to_owned(),
                "2027-04: 120 points SENT".to_owned()
            ),
            (
                "bob@notices.example".to_owned(),
                "2027-04: 80 points SUPPRESSED".to_owned()
            ),
            (
                "cy@notices.example".to_owned(),
                "2027-04: 40 points SENT".to_owned()
            ),
        ]
    );
    assert_eq!(sink.received().len(), 2);

    // Cy's membership ends within 20 days: one warning, on the first day it does.
    tick(&app, &t, at(2027, 4, 1, 10, 30)).await;
    tick(&app, &t, at(2027, 4, 2, 10, 30)).await;
    send_due(&app, &t, &providers).await;
    let warnings: Vec<(String, String)> = subjects(&app, &t)
        .await
        .into_iter()
        .filter(|(_, s)| s.contains("days left"))
        .collect();
    assert_eq!(
        warnings,
        vec![(
            "cy@notices.example".to_owned(),
            "13 days left SENT".to_owned()
        )]
    );

    // The next month: once more each.
    tick(&app, &t, at(2027, 5, 1, 11, 0)).await;
    tick(&app, &t, at(2027, 5, 1, 12, 0)).await;
    send_due(&app, &t, &providers).await;
    let may: Vec<(String, String)> = subjects(&app, &t)
        .await
        .into_iter()
        .filter(|(_, s)| s.starts_with("2027-05"))
        .collect();
    assert_eq!(may.len(), 3, "{may:?}");
    let r = app
        .gql(
            &t.admin_key,
            "{ messages(first: 50) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["messages"]["nodes"].as_array().unwrap().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_what_is_kept_only_for_a_while_once_a_day() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Retention").await;
    let now = at(2027, 6, 1, 3, 0);
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "INSERT INTO idempotency_keys (tenant_id, idempotency_key, operation, request_hash, response, expires_at)
           VALUES ('{t}', 'old', 'x', '\\x00', '{{}}', '2027-05-30'), ('{t}', 'fresh', 'x', '\\x00', '{{}}', '2027-06-02');
         INSERT INTO queue_jobs (tenant_id, job_type, status, updated_at) VALUES
           ('{t}', 'crm_sync', 'completed', '2027-05-01'), ('{t}', 'crm_sync', 'completed', '2027-05-30'),
           ('{t}', 'crm_sync', 'failed', '2027-01-01');
         INSERT INTO demo_sessions (tenant_id, session_token, expires_at) VALUES
           ('{t}', 'gone', '2027-05-31'), ('{t}', 'live', '2027-06-02');",
        t = t.id
    )).await.unwrap();
    let ran = tick(&app, &t, now).await;
    let retention = ran
        .iter()
        .find(|(task, _)| *task == "retention")
        .map(|(_, r)| r.clone());
    assert_eq!(
        retention,
        Some(
            json!({ "idempotencyKeys": 1, "jobs": 1, "translations": 0, "feedback": 0, "demoSessions": 1,
                "performanceMetrics": 0, "integrationLogs": 0 })
        )
    );
    assert!(tick(&app, &t, now + Duration::hours(5))
        .await
        .iter()
        .all(|(task, _)| *task != "retention"));
    // `/metrics` counts what retention purged, over every tenant and day.
    let other = app.bare_tenant("Retention Other").await;
    conn.batch_execute(&format!(
        "INSERT INTO demo_sessions (tenant_id, session_token, expires_at) VALUES ('{}', 'gone too', '2027-06-01')",
        other.id
    ))
    .await
    .unwrap();
    tick(&app, &other, now + Duration::days(1)).await;
    let purged = |kind: &str| format!("growthgraph_retention_purged_total{{kind=\"{kind}\"}}");
    assert_eq!(app.metric(&purged("demoSessions")).await, 2);
    assert_eq!(app.metric(&purged("jobs")).await, 1);
    assert_eq!(app.metric(&purged("feedback")).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_step_sequence_runs_on_its_delays_and_an_unsubscribe_stops_it() {
    let (app, t, sink, providers) = setup("Sequences").await;
    let other = app.bare_tenant("Sequences Other").await;
    let save = "mutation($i: SaveEmailTemplateInput!) { saveEmailTemplate(input: $i) { template { id } userErrors { code message } } }";
    let mut templates = Vec::new();
    for n in 1..=3 {
        let r = app.gql(&t.admin_key, save, json!({ "i": { "name": format!("Step {n}"), "subject": "Step {{ step }} for {{ email }}",
            "htmlContent": format!("<p>Nudge {n}</p>"), "variables": ["step", "email"] } })).await;
        templates.push(
            r["data"]["saveEmailTemplate"]["template"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_owned(),
        );
    }
    let r = app
        .gql(
            &other.admin_key,
            save,
            json!({ "i": { "name": "Theirs", "subject": "x", "htmlContent": "x" } }),
        )
        .await;
    let theirs = r["data"]["saveEmailTemplate"]["template"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let steps = "mutation($i: SaveEmailSequenceStepsInput!) { saveEmailSequenceSteps(input: $i) { steps { stepNumber delayHours } userErrors { field code } } }";
    for (bad, field, code) in [
        (
            json!([{ "delayHours": -1, "templateId": templates[0] }]),
            json!(["input", "steps", "0", "delayHours"]),
            "INVALID",
        ),
        (
            json!([{ "delayHours": 0, "templateId": templates[0] }, { "delayHours": 1, "templateId": theirs }]),
            json!(["input", "steps", "1", "templateId"]),
            "NOT_FOUND",
        ),
        (json!([]), json!(["input", "steps"]), "INVALID"),
    ] {
        let r = app
            .gql(
                &t.admin_key,
                steps,
                json!({ "i": { "segment": "FROZEN_STARTER", "steps": bad } }),
            )
            .await;
        assert_eq!(
            r["data"]["saveEmailSequenceSteps"]["userErrors"][0],
            json!({ "field": field, "code": code }),
            "{r}"
        );
    }
    let r = app.gql(&t.admin_key, steps, json!({ "i": { "segment": "FROZEN_STARTER", "steps": [
        { "delayHours": 0, "templateId": templates[0] }, { "delayHours": 24, "templateId": templates[1] }, { "delayHours": 48, "templateId": templates[2] } ] } })).await;
    assert_eq!(
        r["data"]["saveEmailSequenceSteps"]["steps"],
        json!([
        { "stepNumber": 1, "delayHours": 0 }, { "stepNumber": 2, "delayHours": 24 }, { "stepNumber": 3, "delayHours": 48 }]),
        "{r}"
    );

    let r = app
        .gql(
            &other.admin_key,
            "{ emailSequenceSteps(segment: FROZEN_STARTER) { stepNumber } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["emailSequenceSteps"],
        json!([]),
        "another tenant's sequence is its own"
    );

    // Bob is also a customer; he will opt out of marketing email after the first step.
    let r = app.gql(&t.admin_key, "mutation { upsertCustomer(input: { email: \"bob@seq.example\", name: \"Bob\" }) { customer { id } } }", json!({})).await;
    let bob = r["data"]["upsertCustomer"]["customer"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for email in ["ann@seq.example", "bob@seq.example"] {
        let r = app.gql(&t.admin_key, "mutation($e: String!) { startEmailSequence(input: { recipientEmail: $e, segment: FROZEN_STARTER }) { userErrors { code } } }", json!({ "e": email })).await;
        assert_eq!(r["data"]["startEmailSequence"]["userErrors"], json!([]));
    }
    let start = Utc::now();
    let (a, b) = tokio::join!(tick(&app, &t, start), tick(&app, &t, start));
    let queued: i64 = a
        .iter()
        .chain(b.iter())
        .filter(|(task, _)| *task == "email_sequences")
        .map(|(_, r)| r["queued"].as_i64().unwrap())
        .sum();
    assert_eq!(queued, 2, "two instances ticking send each step once");
    send_due(&app, &t, &providers).await;
    app.gql(&t.admin_key, "mutation($c: ID!) { setCommunicationPreferences(input: { customerId: $c, preferences: [{ channel: EMAIL, type: MARKETING, optedIn: false }] }) { userErrors { code } } }", json!({ "c": bob })).await;
    assert!(tick(&app, &t, start + Duration::hours(23))
        .await
        .iter()
        .all(|(task, _)| *task != "email_sequences"));
    tick(&app, &t, start + Duration::hours(25)).await;
    tick(&app, &t, start + Duration::hours(74)).await;
    tick(&app, &t, start + Duration::hours(100)).await;
    send_due(&app, &t, &providers).await;

    let r = app
        .gql(
            &t.admin_key,
            "{ emailSequences(first: 5) { nodes { recipientEmail status currentStep } } }",
            json!({}),
        )
        .await;
    let mut sequences = r["data"]["emailSequences"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    sequences.sort_by_key(|s| s["recipientEmail"].as_str().unwrap().to_owned());
    assert_eq!(
        sequences,
        vec![
            json!({ "recipientEmail": "ann@seq.example", "status": "COMPLETED", "currentStep": 3 }),
            json!({ "recipientEmail": "bob@seq.example", "status": "CANCELLED", "currentStep": 1 }),
        ]
    );
    let mail = sink.received();
    assert_eq!(mail.len(), 4);
    for n in 1..=3 {
        assert_eq!(
            mail.iter()
                .filter(|m| m.contains(&format!("Subject: Step {n} for ann@seq.example")))
                .count(),
            1
        );
    }
    assert_eq!(
        mail.iter()
            .filter(|m| m.contains("bob@seq.example"))
            .count(),
        1
    );
}

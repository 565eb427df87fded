//! Messages of one tenant only, a campaign message moving its recipient along the funnel, and admins retrying and cancelling deliveries.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_messages_and_email_events_stay_within_their_tenant() {
    let app = TestApp::start_with(serve_args()).await;
    let a = app.bare_tenant("Messages A").await;
    let b = app.bare_tenant("Messages B").await;
    let local = providers::Providers::new(providers::ProviderSettings {
        local_delivery: true,
        ..settings()
    });
    let mut made = Vec::new();
    for t in [&a, &b] {
        let r = app.gql(&t.admin_key, SAVE_TEMPLATE, json!({ "i": { "templateType": "WELCOME", "channel": "EMAIL",
            "name": "Welcome", "subject": "Welcome {{ name }}", "textContent": "Hello {{ name }}", "variables": ["name"] } })).await;
        let template = r["data"]["saveCommunicationTemplate"]["template"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = app.gql(&t.admin_key, "mutation($i: SaveEmailTemplateInput!) { saveEmailTemplate(input: $i) { template { id } userErrors { code } } }",
            json!({ "i": { "name": "Intro", "subject": "Hi {{ company }}", "htmlContent": "<p>{{ company }}</p>", "variables": ["company"] } })).await;
        let email_template = r["data"]["saveEmailTemplate"]["template"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let customer = customer(&app, t, &format!("c@{}.example", t.slug), "C", None).await;
        let sent = send(
            &app,
            &t.admin_key,
            json!({ "channel": "EMAIL", "customerId": customer, "templateId": template,
            "variables": { "name": "C" } }),
        )
        .await;
        let message = sent["message"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{sent}"))
            .to_owned();
        let sent = send(
            &app,
            &t.admin_key,
            json!({ "channel": "EMAIL", "to": "p@x.example", "templateId": email_template,
            "variables": { "company": "X" } }),
        )
        .await;
        assert_eq!(sent["userErrors"], json!([]));
        run(&app, t, &local).await;
        made.push((template, email_template, customer, message));
    }
    let (a_template, a_email_template, a_customer, a_message) = made[0].clone();
    assert_eq!(
        app.assert_lists_own_rows("messages", "communication_log", &a, &b)
            .await,
        2
    );
    for (t, own) in [(&a, &made[0]), (&b, &made[1])] {
        let r = app.gql(&t.admin_key, "{ communicationTemplates { id } emailTemplates { id usageCount } emailEvents { messageId } }", json!({})).await;
        assert_eq!(
            r["data"]["communicationTemplates"],
            json!([{ "id": own.0 }])
        );
        assert_eq!(
            r["data"]["emailTemplates"],
            json!([{ "id": own.1, "usageCount": 1 }])
        );
        assert!(r["data"]["emailEvents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["messageId"] != json!(made[if std::ptr::eq(t, &a) { 1 } else { 0 }].3)));
    }
    // B names A's rows: as if they did not exist, nothing written.
    let r = app.gql(&b.admin_key, "query($m: ID!, $t: ID!) { message(id: $m) { id } emailEvents(messageId: $m) { id } previewTemplate(templateId: $t) { rendered { text } userErrors { code } } }",
        json!({ "m": a_message, "t": a_template })).await;
    assert_eq!(r["data"]["message"], Value::Null);
    assert_eq!(r["data"]["emailEvents"], json!([]));
    assert_eq!(user_error_code(&r, "previewTemplate"), "NOT_FOUND");
    let before = app
        .rows_and_events("communication_log", b.id, "message.queued")
        .await;
    for input in [
        json!({ "channel": "EMAIL", "customerId": a_customer, "body": "x" }),
        json!({ "channel": "EMAIL", "to": "x@y.example", "templateId": a_template, "variables": { "name": "x" } }),
        json!({ "channel": "EMAIL", "to": "x@y.example", "templateId": a_email_template, "variables": { "company": "x" } }),
    ] {
        assert_eq!(
            send(&app, &b.admin_key, input).await["userErrors"][0]["code"],
            "NOT_FOUND"
        );
    }
    let r = app
        .gql(
            &b.admin_key,
            SAVE_TEMPLATE,
            json!({ "i": { "id": a_template, "templateType": "WELCOME", "channel": "EMAIL",
        "name": "Stolen", "textContent": "x" } }),
        )
        .await;
    assert_eq!(
        user_error_code(&r, "saveCommunicationTemplate"),
        "NOT_FOUND"
    );
    let r = app.gql(&b.admin_key, "mutation($i: SaveEmailTemplateInput!) { saveEmailTemplate(input: $i) { userErrors { code } } }",
        json!({ "i": { "id": a_email_template, "name": "Stolen", "subject": "x", "htmlContent": "x" } })).await;
    assert_eq!(user_error_code(&r, "saveEmailTemplate"), "NOT_FOUND");
    assert_eq!(
        app.rows_and_events("communication_log", b.id, "message.queued")
            .await,
        before
    );
    let r = app.gql(&a.admin_key, "query($t: ID!) { previewTemplate(templateId: $t, variables: { name: \"A\" }) { rendered { text } } }", json!({ "t": a_template })).await;
    assert_eq!(r["data"]["previewTemplate"]["rendered"]["text"], "Hello A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_message_moves_its_recipient_along_the_funnel() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Funnel Winery").await;
    let (pair, public) = sendgrid_key_pair();
    let (url, _script) = provider((
        202,
        vec![("x-message-id", "sgFunnel".into())],
        String::new(),
    ))
    .await;
    let token = configure(&app, &t, json!({ "channel": "EMAIL", "provider": "SENDGRID", "enabled": true,
        "fromAddress": "club@funnel.example", "credentials": { "apiKey": "SG.k", "webhookVerificationKey": public } })).await["hookToken"]
        .as_str().unwrap().to_owned();
    let mut conn = app.owner().await;
    conn.batch_execute(&format!("INSERT INTO customers (tenant_id, email, segment) VALUES ('{}', 'vip@funnel.example', 'vip')", t.id)).await.unwrap();
    let r = app.gql(&t.admin_key, "mutation { createCampaign(input: { name: \"Vintage\", targetSegment: \"vip\" }) { campaign { id } } }", json!({})).await;
    let campaign = r["data"]["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.gql(
        &t.admin_key,
        "mutation($id: ID!) { launchCampaign(input: { id: $id }) { userErrors { code } } }",
        json!({ "id": campaign }),
    )
    .await;
    let funnel = "query($id: ID!) { campaign(id: $id) { metrics { sent delivered opened clicked failed } recipients(first: 5) { nodes { id status customerId } } } }";
    let r = app
        .gql(&t.admin_key, funnel, json!({ "id": campaign }))
        .await;
    let recipient = r["data"]["campaign"]["recipients"]["nodes"][0].clone();
    let (recipient_id, customer_id) = (
        recipient["id"].as_str().unwrap().parse().unwrap(),
        recipient["customerId"].as_str().unwrap().parse().unwrap(),
    );

    // What an automation does for one recipient: deliver in its own transaction.
    let db = TenantDb::new(app.pool.clone(), t.id);
    let outgoing = ops::Outgoing {
        channel: growthgraph::domain::comms::model::Channel::Email,
        customer_id: Some(customer_id),
        to: None,
        content: ops::Content::Written {
            subject: Some("Vintage".into()),
            text: "New vintage".into(),
            html: None,
        },
        communication_type: None,
        idempotency_key: Some(format!("campaign/{recipient_id}/send-1")),
        campaign_recipient_id: Some(recipient_id),
        outreach_email_id: None,
        email_sequence_id: None,
    };
    let id = db
        .run(|conn, scope| {
            use scoped_futures::ScopedFutureExt;
            async move { ops::deliver(conn, scope, outgoing).await }.scope_boxed()
        })
        .await
        .unwrap();
    let providers = providers::Providers::new(providers::ProviderSettings {
        sendgrid_base_url: url,
        ..settings()
    });
    run(&app, &t, &providers).await;
    let r = app
        .gql(&t.admin_key, funnel, json!({ "id": campaign }))
        .await;
    assert_eq!(
        r["data"]["campaign"]["metrics"],
        json!({ "sent": 1, "delivered": 0, "opened": 0, "clicked": 0, "failed": 0 })
    );

    let now = chrono::Utc::now().timestamp();
    let events = format!(
        r#"[{{"event":"delivered","timestamp":{now},"sg_message_id":"sgFunnel.f1","growthgraph_message_id":"{id}"}},{{"event":"click","timestamp":{now},"sg_message_id":"sgFunnel.f1","growthgraph_message_id":"{id}"}},{{"event":"spamreport","timestamp":{now},"sg_message_id":"sgFunnel.f1","growthgraph_message_id":"{id}"}}]"#
    );
    let (status, _) = post_hook(
        &app,
        &format!("/hooks/sendgrid/{token}"),
        &signed_sendgrid(&pair, &events),
        events.into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let r = app
        .gql(&t.admin_key, funnel, json!({ "id": campaign }))
        .await;
    // Reaching clicked counts delivered and opened too; the spam report ends the message
    // and withdraws consent, but takes nothing back from the funnel.
    assert_eq!(
        r["data"]["campaign"]["metrics"],
        json!({ "sent": 1, "delivered": 1, "opened": 1, "clicked": 1, "failed": 0 })
    );
    assert_eq!(
        r["data"]["campaign"]["recipients"]["nodes"][0]["status"],
        "CLICKED"
    );
    assert_eq!(
        message(&app, &t, &id.to_string()).await["status"],
        "COMPLAINED"
    );
    let r = app.gql(&t.admin_key, "query($c: ID) { customer(id: $c) { communicationPreferences { channel type optedIn } } }", json!({ "c": customer_id.to_string() })).await;
    assert_eq!(
        r["data"]["customer"]["communicationPreferences"],
        json!([{ "channel": "EMAIL", "type": "MARKETING", "optedIn": false }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_retry_and_cancel_deliveries_through_their_jobs() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Jobs Winery").await;
    let other = app.bare_tenant("Other Jobs").await;
    let (url, script) =
        provider((202, vec![("x-message-id", "sgRetry".into())], String::new())).await;
    configure(&app, &t, json!({ "channel": "EMAIL", "provider": "SENDGRID", "enabled": true, "fromAddress": "a@jobs.example",
        "credentials": { "apiKey": "SG.jobs" } })).await;
    let providers = providers::Providers::new(providers::ProviderSettings {
        sendgrid_base_url: url,
        ..settings()
    });
    let jobs = "query($s: JobStatus) { jobs(type: \"message_delivery\", status: $s, first: 10) { nodes { id status attempts } } }";
    let act = |name: &'static str| {
        format!("mutation($id: ID!) {{ {name}(input: {{ id: $id }}) {{ job {{ status }} userErrors {{ code }} }} }}")
    };

    // A delivery whose job has one attempt meets a 503: the message fails for good.
    let first = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "to": "x@jobs.example", "subject": "s", "body": "b" }),
    )
    .await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "UPDATE queue_jobs SET max_attempts = 1 WHERE tenant_id = '{}'",
        t.id
    ))
    .await
    .unwrap();
    script
        .lock()
        .unwrap()
        .answers
        .push((503, vec![], "{}".into()));
    run(&app, &t, &providers).await;
    let m = message(&app, &t, &first).await;
    assert_eq!(
        (m["status"].as_str(), m["failureCode"].as_str()),
        (Some("FAILED"), Some("retries_exhausted")),
        "{m}"
    );
    let r = app.gql(&t.admin_key, jobs, json!({ "s": "FAILED" })).await;
    let job = r["data"]["jobs"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another tenant cannot touch it; an analyst may not; a failed job cannot be retried twice over.
    let r = app
        .gql(&other.admin_key, &act("retryJob"), json!({ "id": job }))
        .await;
    assert_eq!(user_error_code(&r, "retryJob"), "NOT_FOUND");
    let analyst = app.key(&t, growthgraph::auth::Role::Analyst).await;
    assert_eq!(
        app.gql(&analyst, &act("retryJob"), json!({ "id": job }))
            .await["errors"][0]["extensions"]["code"],
        "FORBIDDEN"
    );
    let r = app
        .gql(&t.admin_key, &act("retryJob"), json!({ "id": job }))
        .await;
    assert_eq!(
        r["data"]["retryJob"],
        json!({ "job": { "status": "PENDING" }, "userErrors": [] })
    );
    assert_eq!(message(&app, &t, &first).await["status"], "QUEUED");
    let r = app
        .gql(&t.admin_key, &act("retryJob"), json!({ "id": job }))
        .await;
    assert_eq!(user_error_code(&r, "retryJob"), "INVALID_TRANSITION");
    run(&app, &t, &providers).await;
    assert_eq!(message(&app, &t, &first).await["status"], "SENT");
    let r = app
        .gql(&t.admin_key, &act("cancelJob"), json!({ "id": job }))
        .await;
    assert_eq!(user_error_code(&r, "cancelJob"), "INVALID_TRANSITION");

    // A queued message cancelled never leaves.
    let second = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "to": "y@jobs.example", "subject": "s", "body": "b" }),
    )
    .await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.gql(&t.admin_key, jobs, json!({ "s": "PENDING" })).await;
    let job = r["data"]["jobs"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .gql(&t.admin_key, &act("cancelJob"), json!({ "id": job }))
        .await;
    assert_eq!(
        r["data"]["cancelJob"],
        json!({ "job": { "status": "CANCELLED" }, "userErrors": [] })
    );
    let seen = script.lock().unwrap().seen.len();
    assert_eq!(run(&app, &t, &providers).await, 0);
    assert_eq!(script.lock().unwrap().seen.len(), seen);
    let m = message(&app, &t, &second).await;
    assert_eq!(
        (m["status"].as_str(), m["failureCode"].as_str()),
        (Some("FAILED"), Some("cancelled"))
    );
}

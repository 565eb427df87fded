//! Templates checked and rendered, consent at send time, a real SMTP round trip, batches, and at most one provider call per message whatever races.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_checked_when_saved_and_a_message_goes_through_a_real_smtp_server() {
    let sink = SmtpSink::start().await;
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Smtp Winery").await;
    let templates = format!(
        "SELECT count(*) AS n FROM communication_templates WHERE tenant_id = '{}'",
        t.id
    );

    // Refused when saved, nothing written: a syntax error, an undeclared variable.
    let r = app.gql(&t.admin_key, SAVE_TEMPLATE, json!({ "i": {
        "templateType": "MONTHLY_STATUS", "channel": "EMAIL", "name": "Monthly",
        "subject": "Hi", "textContent": "Hello\n{% if points %}you have points", "variables": ["points"] } })).await;
    let e = &r["data"]["saveCommunicationTemplate"]["userErrors"][0];
    assert_eq!(e["code"], "INVALID");
    assert_eq!(e["field"], json!(["input", "textContent"]));
    assert!(e["message"].as_str().unwrap().starts_with("line 2:"), "{e}");
    let r = app.gql(&t.admin_key, SAVE_TEMPLATE, json!({ "i": {
        "templateType": "MONTHLY_STATUS", "channel": "EMAIL", "name": "Monthly",
        "subject": "Hi", "textContent": "ok", "htmlContent": "<p>ok</p>\n<p>{{ secret }}</p>", "variables": ["points"] } })).await;
    let e = &r["data"]["saveCommunicationTemplate"]["userErrors"][0];
    assert_eq!(e["field"], json!(["input", "htmlContent"]));
    assert_eq!(
        e["message"],
        "line 2: variable `secret` is not declared in variables"
    );
    assert_eq!(count(&app, &templates).await, 0);

    let r = app
        .gql(
            &t.admin_key,
            SAVE_TEMPLATE,
            json!({ "i": {
        "templateType": "MONTHLY_STATUS", "channel": "EMAIL", "name": "Monthly",
        "subject": "{{ customer.firstName or customer.name }}, your {{ points }} points",
        "textContent": "Dear {{ customer.name }}, you have {{ points }} points.",
        "htmlContent": "<p>Dear {{ customer.name }}, you have <b>{{ points }}</b> points.</p>",
        "variables": ["customer", "points"] } }),
        )
        .await;
    assert_eq!(
        r["data"]["saveCommunicationTemplate"]["userErrors"],
        json!([]),
        "{r}"
    );
    let template = r["data"]["saveCommunicationTemplate"]["template"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = app.gql(&t.admin_key, "query($t: ID!, $v: JSON) { previewTemplate(templateId: $t, variables: $v) { rendered { subject text html } userErrors { code message } } }",
        json!({ "t": template, "v": { "customer": { "name": "<Ann & Bo>" }, "points": 7 } })).await;

    assert_eq!(
        r["data"]["previewTemplate"]["rendered"],
        json!({
            "subject": "<Ann & Bo>, your 7 points",
            "text": "Dear <Ann & Bo>, you have 7 points.",
            "html": "<p>Dear &lt;Ann &amp; Bo&gt;, you have <b>7</b> points.</p>",
        })
    );
    let r = app.gql(&t.admin_key, "query($t: ID!) { previewTemplate(templateId: $t, variables: {}) { rendered { text } userErrors { code field } } }",
        json!({ "t": template })).await;
    assert_eq!(user_error_code(&r, "previewTemplate"), "INVALID");

    configure(
        &app,
        &t,
        json!({ "channel": "EMAIL", "provider": "SMTP", "enabled": true,
        "fromAddress": "club@winery.example", "fromName": "The Club" }),
    )
    .await;
    let ann = customer(&app, &t, "ann@example.com", "<Ann & Bo>", None).await;
    let sent = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "customerId": ann,
        "templateId": template, "variables": { "points": 120 } }),
    )
    .await;
    assert_eq!(sent["userErrors"], json!([]), "{sent}");
    let id = sent["message"]["id"].as_str().unwrap().to_owned();
    assert_eq!(sent["message"]["status"], "QUEUED");
    assert_eq!(sent["message"]["recipient"], "ann@example.com");
    assert_eq!(sent["message"]["communicationType"], "MONTHLY_STATUS");
    assert_eq!(
        sent["message"]["htmlContent"],
        "<p>Dear &lt;Ann &amp; Bo&gt;, you have <b>120</b> points.</p>"
    );

    let providers = providers::Providers::new(providers::ProviderSettings {
        smtp_url: Some(sink.url()),
        ..settings()
    });
    assert_eq!(run(&app, &t, &providers).await, 1);
    let m = message(&app, &t, &id).await;
    assert_eq!(m["status"], "SENT", "{m}");
    assert_eq!(m["provider"], "smtp");
    assert_eq!(m["providerMessageId"], format!("<{id}@growthgraph>"));
    let received = sink.received();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert!(mail.contains("To: ann@example.com"), "{mail}");
    assert!(
        mail.contains("From: \"The Club\" <club@winery.example>"),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("Message-ID: <{id}@growthgraph>")),
        "{mail}"
    );
    assert!(
        mail.contains("Dear <Ann & Bo>, you have 120 points."),
        "{mail}"
    );
    assert!(mail.contains("text/html"), "{mail}");
    assert_eq!(
        event_types(&app, &t, &id).await,
        vec!["message.queued", "message.sent"]
    );
    let r = app
        .gql(
            &t.admin_key,
            "query($m: ID) { emailEvents(messageId: $m) { status recipientEmail } }",
            json!({ "m": id }),
        )
        .await;
    assert_eq!(
        r["data"]["emailEvents"],
        json!([{ "status": "sent", "recipientEmail": "ann@example.com" }])
    );
    // Nothing left to send.
    assert_eq!(run(&app, &t, &providers).await, 0);
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_is_checked_at_send_time_and_unconfigured_channels_say_so() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Consent Winery").await;
    let ann = customer(&app, &t, "ann@consent.example", "Ann", Some("+15551230001")).await;
    let body = json!({ "channel": "EMAIL", "customerId": ann, "subject": "News", "body": "Hello" });
    let marketing = send(&app, &t.admin_key, body.clone()).await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut receipt = body.clone();
    receipt["communicationType"] = json!("TRANSACTIONAL");
    let receipt = send(&app, &t.admin_key, receipt).await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The customer opts out of marketing email after the message was queued.
    let r = app.gql(&t.admin_key, "mutation($c: ID!) { setCommunicationPreferences(input: { customerId: $c, preferences: [{ channel: EMAIL, type: MARKETING, optedIn: false }] }) { userErrors { code message } } }", json!({ "c": ann })).await;
    assert_eq!(
        r["data"]["setCommunicationPreferences"]["userErrors"],
        json!([]),
        "{r}"
    );

    // No channel configured, no local delivery: failed, honestly.
    let strict = providers::Providers::new(settings());
    assert_eq!(run(&app, &t, &strict).await, 2);
    let m = message(&app, &t, &marketing).await;
    assert_eq!(m["status"], "SUPPRESSED", "{m}");
    assert!(m["errorMessage"]
        .as_str()
        .unwrap()
        .contains("opted out of marketing"));
    let m = message(&app, &t, &receipt).await;
    assert_eq!(
        (m["status"].as_str(), m["failureCode"].as_str()),
        (Some("FAILED"), Some("not_configured")),
        "{m}"
    );
    assert_eq!(
        event_types(&app, &t, &marketing).await,
        vec!["message.queued", "message.suppressed"]
    );
    assert_eq!(
        event_types(&app, &t, &receipt).await,
        vec!["message.queued", "message.failed"]
    );

    // With local delivery, the rendered message is kept and readable.
    let local = providers::Providers::new(providers::ProviderSettings {
        local_delivery: true,
        ..settings()
    });
    let mut sms = json!({ "channel": "SMS", "customerId": ann, "body": "Your table is ready", "communicationType": "TRANSACTIONAL" });
    let id = send(&app, &t.admin_key, sms.clone()).await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(run(&app, &t, &local).await, 1);
    let m = message(&app, &t, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["provider"].as_str()),
        (Some("SENT"), Some("local"))
    );
    let r = app
        .gql(
            &t.admin_key,
            "{ messages(channel: SMS, first: 5) { nodes { id content recipient status } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["messages"]["nodes"][0],
        json!({ "id": id, "content": "Your table is ready", "recipient": "+15551230001", "status": "SENT" })
    );

    // The tenant turns its own marketing emails off (seed 000 email_preferences).
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "UPDATE tenants SET email_preferences = '{{\"marketing\": false}}' WHERE id = '{}'",
        t.id
    ))
    .await
    .unwrap();
    let bob = customer(&app, &t, "bob@consent.example", "Bob", None).await;
    let id = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "customerId": bob, "subject": "News", "body": "Hi" }),
    )
    .await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    run(&app, &t, &local).await;
    let m = message(&app, &t, &id).await;
    assert_eq!(m["status"], "SUPPRESSED");
    assert_eq!(m["errorMessage"], "the tenant turned marketing emails off");

    // Refused input: coded, nothing written.
    let before = count(
        &app,
        &format!(
            "SELECT count(*) AS n FROM communication_log WHERE tenant_id = '{}'",
            t.id
        ),
    )
    .await;
    for (input, field) in [
        (
            json!({ "channel": "EMAIL", "to": "not-an-email", "body": "x" }),
            "to",
        ),
        (
            json!({ "channel": "SMS", "to": "12345", "body": "x" }),
            "to",
        ),
        (
            json!({ "channel": "PHONE", "to": "+15551230001", "body": "x" }),
            "channel",
        ),
        (json!({ "channel": "EMAIL", "body": "x" }), "to"),
        (
            json!({ "channel": "EMAIL", "to": "a@b.example", "body": "" }),
            "body",
        ),
        (
            json!({ "channel": "EMAIL", "to": "a@b.example", "body": "x\u{0}y" }),
            "body",
        ),
    ] {
        let r = app.gql(&t.admin_key, SEND, json!({ "i": input })).await;
        let e = if r["data"]["sendMessage"].is_null() {
            r["errors"][0]["extensions"]["field"].clone()
        } else {
            r["data"]["sendMessage"]["userErrors"][0]["field"].clone()
        };
        assert_eq!(e, json!(["input", field]), "{input}: {r}");
    }
    let analyst = app.key(&t, growthgraph::auth::Role::Analyst).await;
    sms["to"] = json!("+15551230002");
    let r = app.gql(&analyst, SEND, json!({ "i": sms })).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT count(*) AS n FROM communication_log WHERE tenant_id = '{}'",
                t.id
            )
        )
        .await,
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_is_one_provider_call_whatever_races_or_crashes() {
    let sink = SmtpSink::start().await;
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Once Winery").await;
    configure(&app, &t, json!({ "channel": "EMAIL", "provider": "SMTP", "enabled": true, "fromAddress": "once@winery.example" })).await;
    // The same idempotency key queues one message; with other input it is refused.
    let input = json!({ "channel": "EMAIL", "to": "ann@once.example", "subject": "Hi", "body": "Once", "idempotencyKey": "welcome-ann" });
    let (a, b) = tokio::join!(
        send(&app, &t.admin_key, input.clone()),
        send(&app, &t.admin_key, input.clone())
    );
    assert_eq!(a["message"]["id"], b["message"]["id"]);
    let mut changed = input.clone();
    changed["body"] = json!("Twice");
    assert_eq!(
        send(&app, &t.admin_key, changed).await["userErrors"][0]["code"],
        "IDEMPOTENCY_KEY_REUSED"
    );
    assert_eq!(count(&app, &format!("SELECT count(*) AS n FROM queue_jobs WHERE tenant_id = '{}' AND job_type = 'message_delivery'", t.id)).await, 1);

    // The runner visits the tenants with due deliveries, and only them.
    let due = growthgraph::jobs::tenants_with_due_jobs(&app.pool, "message_delivery")
        .await
        .unwrap();
    assert_eq!(due, vec![t.id]);

    // Two runners (as on two instances) race for the job: one provider call.
    let providers = providers::Providers::new(providers::ProviderSettings {
        smtp_url: Some(sink.url()),
        ..settings()
    });
    let (x, y) = tokio::join!(run(&app, &t, &providers), run(&app, &t, &providers));
    assert_eq!(x + y, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.received().len(), 1);
    let due = growthgraph::jobs::tenants_with_due_jobs(&app.pool, "message_delivery")
        .await
        .unwrap();
    assert!(due.is_empty());

    // A runner stopped after the provider call and before recording its answer: the job
    // is claimed again after 5 minutes, and the message is not sent a second time.
    let id = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "to": "bob@once.example", "subject": "Hi", "body": "Once" }),
    )
    .await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "UPDATE communication_log SET sending_started_at = now() - interval '6 minutes' WHERE id = '{id}';
         UPDATE queue_jobs SET status = 'processing', started_at = now() - interval '6 minutes', attempts = 1 WHERE payload->>'messageId' = '{id}';"
    )).await.unwrap();
    assert_eq!(run(&app, &t, &providers).await, 1);
    let m = message(&app, &t, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["failureCode"].as_str()),
        (Some("FAILED"), Some("outcome_unknown")),
        "{m}"
    );
    assert_eq!(sink.received().len(), 1);

    // Through Resend, whose Idempotency-Key recognises a repeat, it is sent again safely.
    let (url, script) = provider((200, vec![], r#"{"id":"re_001"}"#.into())).await;
    let r = configure(&app, &t, json!({ "channel": "EMAIL", "provider": "RESEND", "enabled": true, "fromAddress": "once@winery.example",
        "credentials": { "apiKey": "re_key" } })).await;
    assert!(r["hookToken"].is_string());
    conn.batch_execute(&format!("UPDATE channel_configurations SET enabled = false WHERE tenant_id = '{}' AND provider = 'smtp'", t.id)).await.unwrap();
    let id = send(&app, &t.admin_key, json!({ "channel": "EMAIL", "to": "cy@once.example", "subject": "Hi", "body": "Once", "html": "<p>Once</p>" })).await["message"]["id"].as_str().unwrap().to_owned();
    conn.batch_execute(&format!(
        "UPDATE communication_log SET sending_started_at = now() WHERE id = '{id}'"
    ))
    .await
    .unwrap();
    let resend = providers::Providers::new(providers::ProviderSettings {
        resend_base_url: url,
        ..settings()
    });
    assert_eq!(run(&app, &t, &resend).await, 1);
    let m = message(&app, &t, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["providerMessageId"].as_str()),
        (Some("SENT"), Some("re_001")),
        "{m}"
    );
    let s = script.lock().unwrap();
    let request = &s.seen[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/emails")
    );
    assert_eq!(request.headers["authorization"], "Bearer re_key");
    assert_eq!(request.headers["idempotency-key"], id.as_str());
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "from": "once@winery.example", "to": ["cy@once.example"], "subject": "Hi", "text": "Once", "html": "<p>Once</p>",
            "tags": [{ "name": "growthgraph_message_id", "value": id }],
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runners_settle_many_messages_of_the_same_recipients() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Race Winery").await;
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "INSERT INTO customers (tenant_id, email, segment) SELECT '{t}', 'r' || g || '@race.example', 'race' FROM generate_series(1, 20) g",
        t = t.id
    )).await.unwrap();
    let r = app.gql(&t.admin_key, "mutation { createCampaign(input: { name: \"Race\", targetSegment: \"race\" }) { campaign { id } } }", json!({})).await;
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
    let r = app.gql(&t.admin_key, "query($id: ID!) { campaign(id: $id) { recipients(first: 50) { nodes { id customerId } } } }", json!({ "id": campaign })).await;
    let db = TenantDb::new(app.pool.clone(), t.id);
    // Two messages per recipient, no channel configured: every one fails, and each failure
    // moves its recipient (and the campaign's counters) in the runners' record phases.
    for node in r["data"]["campaign"]["recipients"]["nodes"]
        .as_array()
        .unwrap()
    {
        for step in ["a", "b"] {
            let outgoing = ops::Outgoing {
                customer_id: Some(node["customerId"].as_str().unwrap().parse().unwrap()),
                campaign_recipient_id: Some(node["id"].as_str().unwrap().parse().unwrap()),
                idempotency_key: Some(format!("race/{}/{step}", node["id"].as_str().unwrap())),
                communication_type: Some(
                    growthgraph::domain::messages::model::CommunicationType::Transactional,
                ),
                ..ops::Outgoing::of_template(
                    growthgraph::domain::comms::model::Channel::Email,
                    uuid::Uuid::nil(),
                    json!({}),
                )
            };
            let outgoing = ops::Outgoing {
                content: ops::Content::Written {
                    subject: Some("s".into()),
                    text: "b".into(),
                    html: None,
                },
                ..outgoing
            };
            db.run(|conn, scope| {
                use scoped_futures::ScopedFutureExt;
                async move { ops::deliver(conn, scope, outgoing).await }.scope_boxed()
            })
            .await
            .unwrap();
        }
    }
    let strict = providers::Providers::new(settings());
    let key = key();
    let runner = || async {
        let mut ran = 0;
        loop {
            let n = ops::run_due(&db, &strict, Some(&key), 3)
                .await
                .expect("no runner fails (no deadlock)");
            ran += n;
            if n == 0 {
                return ran;
            }
        }
    };
    let (a, b, c, d) = tokio::join!(runner(), runner(), runner(), runner());
    assert_eq!(a + b + c + d, 40);
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID!) { campaign(id: $id) { metrics { recipients failed } } }",
            json!({ "id": campaign }),
        )
        .await;
    assert_eq!(
        r["data"]["campaign"]["metrics"],
        json!({ "recipients": 20, "failed": 20 })
    );
    assert_eq!(count(&app, &format!("SELECT count(*) AS n FROM communication_log WHERE tenant_id = '{}' AND failure_code = 'not_configured'", t.id)).await, 40);
}

/// `deliver_many` (what campaign workflows queue through): each message answered in order,
/// the refused ones writing nothing, the same idempotency key one message within a batch,
/// across batches and across racing batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_messages_queues_the_good_ones_and_answers_each() {
    use growthgraph::domain::comms::model::Channel;
    use ops::{Content, Outgoing};
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Batch Winery").await;
    let r = app.gql(&t.admin_key, SAVE_TEMPLATE, json!({ "i": {
        "templateType": "MONTHLY_STATUS", "channel": "EMAIL", "name": "Monthly",
        "subject": "{{ points }} points", "textContent": "You have {{ points }} points", "variables": ["points"] } })).await;
    let template: uuid::Uuid = r["data"]["saveCommunicationTemplate"]["template"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .parse()
        .unwrap();
    let r = app.gql(&t.admin_key, "mutation { upsertCustomer(input: { email: \"ann@batch.example\", name: \"Ann\" }) { customer { id } } }", json!({})).await;
    let ann: uuid::Uuid = r["data"]["upsertCustomer"]["customer"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mail = |key: Option<&str>| Outgoing {
        customer_id: Some(ann),
        idempotency_key: key.map(str::to_owned),
        ..Outgoing::of_template(Channel::Email, template, json!({ "points": 12 }))
    };
    let batch = vec![
        mail(None),
        mail(Some("k1")),
        mail(Some("k1")),
        Outgoing {
            channel: Channel::Phone,
            ..mail(None)
        },
        Outgoing {
            content: Content::Template {
                id: uuid::Uuid::new_v4(),
                variables: json!({}),
            },
            ..mail(None)
        },
        Outgoing {
            to: Some("not an address".into()),
            ..mail(None)
        },
        Outgoing {
            customer_id: Some(uuid::Uuid::new_v4()),
            ..mail(None)
        },
        Outgoing {
            to: Some("+33612345678".into()),
            content: Content::Written {
                subject: None,
                text: " ".into(),
                html: None,
            },
            ..Outgoing::of_template(Channel::Sms, template, json!({}))
        },
        Outgoing {
            channel: Channel::Sms,
            to: Some("+33612345678".into()),
            ..mail(None)
        },
    ];
    let db = TenantDb::new(app.pool.clone(), t.id);
    let deliver = |batch: Vec<Outgoing>| {
        let db = db.clone();
        async move {
            db.run(move |conn, scope| {
                use scoped_futures::ScopedFutureExt;
                async move { ops::deliver_many(conn, scope, batch).await }.scope_boxed()
            })
            .await
            .unwrap()
        }
    };
    let answers = deliver(batch).await;
    let refusal = |i: usize| {
        let e = answers[i].as_ref().unwrap_err();
        (
            format!("{:?}", e.code),
            e.field.clone().unwrap_or_default().join("."),
        )
    };
    let (first, keyed) = (*answers[0].as_ref().unwrap(), *answers[1].as_ref().unwrap());
    assert_ne!(first, keyed);
    assert_eq!(
        answers[2].as_ref().unwrap(),
        &keyed,
        "one message per key within a batch"
    );
    assert_eq!(refusal(3), ("Invalid".into(), "input.channel".into()));
    assert_eq!(refusal(4), ("NotFound".into(), "input.templateId".into()));
    assert_eq!(refusal(5), ("Invalid".into(), "input.to".into()));
    assert_eq!(refusal(6), ("NotFound".into(), "input.customerId".into()));
    assert_eq!(refusal(7), ("Invalid".into(), "input.body".into()));
    assert_eq!(
        refusal(8),
        ("Invalid".into(), "input.templateId".into()),
        "an email template by SMS"
    );
    let tenant = format!("tenant_id = '{}'", t.id);
    let rows = |table: &str, more: &str| {
        let sql = format!("SELECT count(*) AS n FROM {table} WHERE {tenant}{more}");
        let app = &app;
        async move { count(app, &sql).await }
    };
    assert_eq!(rows("communication_log", "").await, 2);
    assert_eq!(
        rows("queue_jobs", " AND job_type = 'message_delivery'").await,
        2
    );
    assert_eq!(
        rows("domain_events", " AND event_type = 'message.queued'").await,
        2
    );
    let subject = count(&app, &format!("SELECT count(*) AS n FROM communication_log WHERE {tenant} AND subject = '12 points' AND recipient = 'ann@batch.example' AND status = 'queued'")).await;
    assert_eq!(subject, 2, "rendered for the customer's address");

    // Racing batches of the same new keys: one message per key.
    let keys = |n: usize| {
        (0..n)
            .map(|i| mail(Some(&format!("race-{i}"))))
            .collect::<Vec<_>>()
    };
    let (a, b) = tokio::join!(deliver(keys(50)), deliver(keys(50)));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.as_ref().unwrap(), y.as_ref().unwrap());
    }
    assert_eq!(rows("communication_log", "").await, 52);
    assert_eq!(
        deliver(vec![mail(Some("k1"))]).await[0].as_ref().unwrap(),
        &keyed
    );
    assert_eq!(rows("queue_jobs", "").await, 52);
}

//! SendGrid and Twilio against local servers checking their documented requests, and their signed status reports moving messages forward only.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendgrid_gets_its_documented_request_and_its_signed_events_move_messages_forward_only() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Grid Winery").await;
    let other = app.bare_tenant("Other Winery").await;
    let (pair, public) = sendgrid_key_pair();
    let (url, script) = provider((
        202,
        vec![("x-message-id", "sgMsg001".into())],
        String::new(),
    ))
    .await;
    let configured = configure(
        &app,
        &t,
        json!({ "channel": "EMAIL", "provider": "SENDGRID", "enabled": true,
        "fromAddress": "club@grid.example", "fromName": "Grid Club",
        "credentials": { "apiKey": "SG.test-key", "webhookVerificationKey": public } }),
    )
    .await;
    let token = configured["hookToken"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ghk_") && token.len() == 52);
    let again = configure(
        &app,
        &t,
        json!({ "channel": "EMAIL", "provider": "SENDGRID", "enabled": true }),
    )
    .await;
    assert_eq!(again["hookToken"], Value::Null, "the token is shown once");

    let ann = customer(&app, &t, "ann@grid.example", "Ann", None).await;
    let id = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "customerId": ann, "subject": "Harvest",
        "body": "New vintage", "html": "<p>New vintage</p>" }),
    )
    .await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let providers = providers::Providers::new(providers::ProviderSettings {
        sendgrid_base_url: url.clone(),
        ..settings()
    });
    // First a rate limit (retried later), then acceptance.
    script.lock().unwrap().answers.push((
        429,
        vec![],
        r#"{"errors":[{"message":"too many requests"}]}"#.into(),
    ));
    assert_eq!(run(&app, &t, &providers).await, 1);
    let m = message(&app, &t, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("QUEUED"), Some(1)),
        "{m}"
    );
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "UPDATE queue_jobs SET run_at = now() WHERE tenant_id = '{}'",
        t.id
    ))
    .await
    .unwrap();
    assert_eq!(run(&app, &t, &providers).await, 1);
    let m = message(&app, &t, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["providerMessageId"].as_str()),
        (Some("SENT"), Some("sgMsg001")),
        "{m}"
    );
    {
        let s = script.lock().unwrap();
        assert_eq!(s.seen.len(), 2);
        let request = &s.seen[1];
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.path, "/v3/mail/send");
        assert_eq!(request.headers["authorization"], "Bearer SG.test-key");
        assert_eq!(request.headers["content-type"], "application/json");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body,
            json!({
                "personalizations": [{ "to": [{ "email": "ann@grid.example" }] }],
                "from": { "email": "club@grid.example", "name": "Grid Club" },
                "subject": "Harvest",
                "content": [{ "type": "text/plain", "value": "New vintage" }, { "type": "text/html", "value": "<p>New vintage</p>" }],
                "custom_args": { "growthgraph_message_id": id },
            })
        );
    }

    let hook = format!("/hooks/sendgrid/{token}");
    let now = chrono::Utc::now().timestamp();
    let events = format!(
        r#"[{{"email":"ann@grid.example","timestamp":{},"event":"delivered","sg_message_id":"sgMsg001.filterdrecv-1","sg_event_id":"e1","growthgraph_message_id":"{id}"}},{{"email":"ann@grid.example","timestamp":{},"event":"open","sg_message_id":"sgMsg001.filterdrecv-1","sg_event_id":"e2"}}]"#,
        now + 1,
        now + 2
    );
    let (status, _) = post_hook(
        &app,
        &hook,
        &signed_sendgrid(&pair, &events),
        events.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let m = message(&app, &t, &id).await;
    assert_eq!(m["status"], "OPENED", "{m}");
    assert!(m["deliveredAt"].is_string() && m["openedAt"].is_string());

    // A late `delivered` never moves it back; the event stream keeps it.
    let late = format!(
        r#"[{{"email":"ann@grid.example","timestamp":{},"event":"delivered","sg_message_id":"sgMsg001.filterdrecv-1"}}]"#,
        now + 3
    );
    assert_eq!(
        post_hook(
            &app,
            &hook,
            &signed_sendgrid(&pair, &late),
            late.into_bytes()
        )
        .await
        .0,
        200
    );
    assert_eq!(message(&app, &t, &id).await["status"], "OPENED");
    let r = app
        .gql(
            &t.admin_key,
            "query($m: ID) { emailEvents(messageId: $m) { status } }",
            json!({ "m": id }),
        )
        .await;
    assert_eq!(
        r["data"]["emailEvents"],
        json!([{ "status": "sent" }, { "status": "delivered" }, { "status": "opened" }, { "status": "delivered" }])
    );
    assert_eq!(
        event_types(&app, &t, &id).await,
        vec![
            "message.queued",
            "message.sent",
            "message.delivered",
            "message.opened"
        ]
    );

    // Refused, nothing written: a tampered body, no signature, an unknown token, a body
    // that is not SendGrid's, another tenant's token.
    let written = format!(
        "SELECT count(*) AS n FROM email_events WHERE tenant_id = '{}'",
        t.id
    );
    let before = count(&app, &written).await;
    let click = format!(
        r#"[{{"event":"click","timestamp":1733400400,"sg_message_id":"sgMsg001.x","growthgraph_message_id":"{id}"}}]"#
    );
    let headers = signed_sendgrid(&pair, &click);
    let tampered = click.replace("click", "bounce");
    assert_eq!(
        post_hook(&app, &hook, &headers, tampered.into_bytes())
            .await
            .0,
        401
    );
    assert_eq!(
        post_hook(&app, &hook, &headers[..1], click.clone().into_bytes())
            .await
            .0,
        401
    );
    let unknown = format!("/hooks/sendgrid/ghk_{}", "0".repeat(48));
    assert_eq!(
        post_hook(&app, &unknown, &headers, click.clone().into_bytes())
            .await
            .0,
        401
    );
    assert_eq!(
        post_hook(
            &app,
            "/hooks/sendgrid/nope",
            &headers,
            click.clone().into_bytes()
        )
        .await
        .0,
        401
    );
    let malformed = r#"{"event":"click"}"#;
    assert_eq!(
        post_hook(
            &app,
            &hook,
            &signed_sendgrid(&pair, malformed),
            malformed.as_bytes().to_vec()
        )
        .await
        .0,
        400
    );
    assert_eq!(
        post_hook(
            &app,
            &format!("/hooks/twilio/{token}"),
            &headers,
            click.clone().into_bytes()
        )
        .await
        .0,
        401
    );
    let (other_pair, other_public) = sendgrid_key_pair();
    let other_token = configure(
        &app,
        &other,
        json!({ "channel": "EMAIL", "provider": "SENDGRID", "enabled": true,
        "credentials": { "apiKey": "SG.other", "webhookVerificationKey": other_public } }),
    )
    .await["hookToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = post_hook(
        &app,
        &format!("/hooks/sendgrid/{other_token}"),
        &signed_sendgrid(&other_pair, &click),
        click.clone().into_bytes(),
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({ "moved": 0 })),
        "another tenant's hook reaches none of this tenant's messages"
    );
    assert_eq!(count(&app, &written).await, before);
    assert_eq!(message(&app, &t, &id).await["status"], "OPENED");

    // A permanent refusal keeps the provider's message, never the key.
    script.lock().unwrap().answers.push((400, vec![], r#"{"errors":[{"message":"The from address does not match a verified Sender Identity","field":"from"}]}"#.into()));
    let id = send(
        &app,
        &t.admin_key,
        json!({ "channel": "EMAIL", "to": "x@grid.example", "subject": "s", "body": "b" }),
    )
    .await["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    run(&app, &t, &providers).await;
    let m = message(&app, &t, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["failureCode"].as_str()),
        (Some("FAILED"), Some("rejected")),
        "{m}"
    );
    assert!(m["errorMessage"]
        .as_str()
        .unwrap()
        .contains("verified Sender Identity"));
    assert!(!m.to_string().contains("SG.test-key"));
}

fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_sends_sms_and_whatsapp_and_its_signed_status_callbacks_are_applied() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Twilio Winery").await;
    let (url, script) = provider((
        201,
        vec![("content-type", "application/json".into())],
        r#"{"sid":"SM0001","status":"queued"}"#.into(),
    ))
    .await;
    let token = configure(&app, &t, json!({ "channel": "SMS", "provider": "TWILIO", "enabled": true, "fromAddress": "+15550000001",
        "credentials": { "accountSid": "AC123", "authToken": "tw-secret" } })).await["hookToken"].as_str().unwrap().to_owned();
    configure(&app, &t, json!({ "channel": "WHATSAPP", "provider": "TWILIO", "enabled": true, "fromAddress": "+15550000002",
        "credentials": { "accountSid": "AC123", "authToken": "tw-secret" } })).await;
    let ann = customer(&app, &t, "ann@tw.example", "Ann", Some("+15551112222")).await;
    let sms = send(&app, &t.admin_key, json!({ "channel": "SMS", "customerId": ann, "body": "Pickup ready", "communicationType": "TRANSACTIONAL" })).await["message"]["id"].as_str().unwrap().to_owned();
    let providers = providers::Providers::new(providers::ProviderSettings {
        twilio_base_url: url.clone(),
        public_url: Some(app.base.clone()),
        ..settings()
    });
    assert_eq!(run(&app, &t, &providers).await, 1);
    script.lock().unwrap().default = Some((201, vec![], r#"{"sid":"SM0002"}"#.into()));
    send(&app, &t.admin_key, json!({ "channel": "WHATSAPP", "customerId": ann, "body": "Hola", "communicationType": "TRANSACTIONAL" })).await;
    assert_eq!(run(&app, &t, &providers).await, 1);
    let hook = format!("{}/hooks/twilio/{token}", app.base);
    {
        let s = script.lock().unwrap();
        let request = &s.seen[0];
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.path, "/2010-04-01/Accounts/AC123/Messages.json");
        let basic = base64::engine::general_purpose::STANDARD.encode("AC123:tw-secret");
        assert_eq!(request.headers["authorization"], format!("Basic {basic}"));
        assert_eq!(
            request.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&request.body).unwrap();
        assert_eq!(
            form,
            vec![
                ("To".to_owned(), "+15551112222".to_owned()),
                ("From".into(), "+15550000001".into()),
                ("Body".into(), "Pickup ready".into()),
                ("StatusCallback".into(), hook.clone()),
            ]
        );
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&s.seen[1].body).unwrap();
        assert_eq!(
            &form[..2],
            &[
                ("To".to_owned(), "whatsapp:+15551112222".to_owned()),
                ("From".into(), "whatsapp:+15550000002".into())
            ]
        );
    }
    let m = message(&app, &t, &sms).await;
    assert_eq!(
        (m["status"].as_str(), m["providerMessageId"].as_str()),
        (Some("SENT"), Some("SM0001"))
    );

    let params = [
        ("MessageSid", "SM0001"),
        ("MessageStatus", "delivered"),
        ("AccountSid", "AC123"),
        ("To", "+15551112222"),
    ];
    let form = serde_urlencoded::to_string(params).unwrap();
    let good = twilio_signature("tw-secret", &hook, &params);
    let path = format!("/hooks/twilio/{token}");
    let form_type = (
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    );
    let bad = twilio_signature("tw-wrong", &hook, &params);
    assert_eq!(
        post_hook(
            &app,
            &path,
            &[form_type.clone(), ("x-twilio-signature", bad)],
            form.clone().into_bytes()
        )
        .await
        .0,
        401
    );
    assert_eq!(message(&app, &t, &sms).await["status"], "SENT");
    let (status, body) = post_hook(
        &app,
        &path,
        &[form_type.clone(), ("x-twilio-signature", good)],
        form.into_bytes(),
    )
    .await;
    assert_eq!((status, body), (200, json!({ "moved": 1 })));
    assert_eq!(message(&app, &t, &sms).await["status"], "DELIVERED");
    // `sent` after `delivered` moves nothing; `undelivered` is final only from earlier.
    let params = [("MessageSid", "SM0001"), ("MessageStatus", "sent")];
    let signature = twilio_signature("tw-secret", &hook, &params);
    let (_, body) = post_hook(
        &app,
        &path,
        &[form_type.clone(), ("x-twilio-signature", signature)],
        serde_urlencoded::to_string(params).unwrap().into_bytes(),
    )
    .await;
    assert_eq!(body, json!({ "moved": 0 }));
    assert_eq!(message(&app, &t, &sms).await["status"], "DELIVERED");
}

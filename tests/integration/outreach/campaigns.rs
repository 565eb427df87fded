use growthgraph::domain::messages::providers::{ProviderSettings, Providers};

use super::*;
use crate::messages::{configure, run, serve_args, SmtpSink};

const CAMPAIGN: &str = "mutation($i: OutreachCampaignInput!) { createOutreachCampaign(input: $i) { campaign { id status } userErrors { code field message } } }";
const UPDATE: &str = "mutation($i: OutreachCampaignInput!) { updateOutreachCampaign(input: $i) { campaign { id status } userErrors { code field message } } }";
const GENERATE: &str = "mutation($c: ID!) { generateOutreachEmails(campaignId: $c) { created userErrors { code message } } }";
const APPROVE: &str = "mutation($id: ID!) { approveOutreachEmail(id: $id) { email { id status } userErrors { code field message } } }";
const REJECT: &str = "mutation($id: ID!) { rejectOutreachEmail(id: $id) { email { id status } userErrors { code field message } } }";
const EVENT: &str = "mutation($e: ID!, $a: OutreachAction!, $r: String) { recordOutreachEvent(input: { emailId: $e, action: $a, replyContent: $r }) { event { action } userErrors { code field message } } }";
const EMAILS: &str = "query($c: ID!) { outreachCampaign(id: $c) { status metrics { sent delivered opened replied bounced openRate replyRate bounceRate } emails(first: 50) { nodes { id companyName prospectEmail subject content status followUpSequence missingEmail sentAt openedAt repliedAt } } } }";

async fn campaign_state(app: &TestApp, key: &str, campaign: &str) -> Value {
    let r = app.gql(key, EMAILS, json!({ "c": campaign })).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["outreachCampaign"].clone()
}

fn email_of<'a>(state: &'a Value, company: &str, sequence: i64) -> &'a Value {
    state["emails"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["companyName"] == company && e["followUpSequence"] == sequence)
        .unwrap_or_else(|| panic!("no email {sequence} to {company} in {state}"))
}

fn errors(r: &Value, mutation: &str) -> Value {
    r["data"][mutation]["userErrors"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outreach_emails_are_approved_sent_followed_up_and_counted_once() {
    let sink = SmtpSink::start().await;
    let app = TestApp::start_with(serve_args()).await;
    let t = app.bare_tenant("Outreach Winery").await;
    configure(
        &app,
        &t,
        json!({ "channel": "EMAIL", "provider": "SMTP", "enabled": true, "fromAddress": "cave@winery.example" }),
    )
    .await;
    let providers = Providers::new(ProviderSettings {
        smtp_url: Some(sink.url()),
        ..ProviderSettings::default()
    });
    let r = app.gql(&t.admin_key, "mutation($i: SaveEmailTemplateInput!) { saveEmailTemplate(input: $i) { template { id } userErrors { message } } }",
        json!({ "i": { "name": "Intro", "subject": "Wines for {{ company }}", "htmlContent": "<p>Hello {{ name }} of {{ company }}</p>",
            "plainContent": "Hello {{ name }} of {{ company }}", "variables": ["name", "company"] } })).await;
    let template = r["data"]["saveEmailTemplate"]["template"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    import(
        &app,
        &t.admin_key,
        json!([
            { "businessName": "Bistro", "website": "bistro.example", "industry": "restaurant", "contactEmail": "chef@bistro.example",
              "metadata": { "contactName": "Anne" } },
            { "businessName": "Brasserie", "website": "brasserie.example", "industry": "restaurant", "contactEmail": "hello@brasserie.example" },
            { "businessName": "Nomail", "website": "nomail.example", "industry": "restaurant" },
            { "businessName": "Hotel", "website": "hotel.example", "industry": "hospitality", "contactEmail": "desk@hotel.example" },
        ]),
    )
    .await;
    let campaigns = format!(
        "SELECT count(*) AS n FROM outreach_campaigns WHERE tenant_id = '{}'",
        t.id
    );

    // Refused campaigns write nothing.
    for (input, field) in [
        (
            json!({ "name": "X", "emailTemplateId": template, "followUpSchedule": [{ "afterDays": 0 }] }),
            "followUpSchedule",
        ),
        (
            json!({ "name": "X", "emailTemplateId": uuid::Uuid::new_v4() }),
            "emailTemplateId",
        ),
        (json!({ "name": "", "emailTemplateId": template }), "name"),
        (
            json!({ "name": "X", "target": { "scoreMin": 90, "scoreMax": 50 } }),
            "target",
        ),
    ] {
        let r = app.gql(&t.admin_key, CAMPAIGN, json!({ "i": input })).await;
        assert_eq!(
            errors(&r, "createOutreachCampaign")[0]["field"],
            json!(["input", field]),
            "{r}"
        );
    }
    assert_eq!(count(&app, &campaigns).await, 0);

    let r = app
        .gql(
            &t.admin_key,
            CAMPAIGN,
            json!({ "i": { "name": "Restaurants", "target": { "industry": "restaurant" },
        "emailTemplateId": template, "followUpSchedule": [{ "afterDays": 3 }] } }),
        )
        .await;
    assert_eq!(
        r["data"]["createOutreachCampaign"]["campaign"]["status"], "DRAFT",
        "{r}"
    );
    let campaign = r["data"]["createOutreachCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // One email per targeted candidate, once even when generated twice at once.
    let racing = (0..3).map(|_| app.gql(&t.admin_key, GENERATE, json!({ "c": campaign })));
    let created: i64 = futures_util::future::join_all(racing)
        .await
        .iter()
        .map(|r| {
            r["data"]["generateOutreachEmails"]["created"]
                .as_i64()
                .unwrap_or_else(|| panic!("{r}"))
        })
        .sum();
    assert_eq!(created, 3);
    let state = campaign_state(&app, &t.admin_key, &campaign).await;
    let bistro = email_of(&state, "Bistro", 1);
    assert_eq!(bistro["subject"], "Wines for Bistro");
    assert_eq!(bistro["content"], "<p>Hello Anne of Bistro</p>");
    assert_eq!(bistro["status"], "PENDING");
    let nomail = email_of(&state, "Nomail", 1);
    assert_eq!(nomail["missingEmail"], true);
    let (bistro, brasserie, nomail) = (
        bistro["id"].as_str().unwrap().to_owned(),
        email_of(&state, "Brasserie", 1)["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        nomail["id"].as_str().unwrap().to_owned(),
    );

    // Nothing to send to: not approved. Rejected once. Events of an email never sent:
    // refused.
    let r = app
        .gql(&t.admin_key, APPROVE, json!({ "id": nomail }))
        .await;
    assert_eq!(
        errors(&r, "approveOutreachEmail")[0]["code"],
        "INVALID",
        "{r}"
    );
    let r = app.gql(&t.admin_key, REJECT, json!({ "id": nomail })).await;
    assert_eq!(
        r["data"]["rejectOutreachEmail"]["email"]["status"], "REJECTED",
        "{r}"
    );
    let r = app.gql(&t.admin_key, REJECT, json!({ "id": nomail })).await;
    assert_eq!(
        errors(&r, "rejectOutreachEmail")[0]["code"],
        "INVALID_TRANSITION"
    );
    let r = app
        .gql(&t.admin_key, EVENT, json!({ "e": nomail, "a": "OPENED" }))
        .await;
    assert_eq!(
        errors(&r, "recordOutreachEvent")[0]["code"],
        "INVALID_TRANSITION",
        "{r}"
    );

    // Approved while the campaign is a draft: nothing leaves until it is active.
    let r = app
        .gql(&t.admin_key, APPROVE, json!({ "id": bistro }))
        .await;
    assert_eq!(
        r["data"]["approveOutreachEmail"]["email"]["status"], "APPROVED",
        "{r}"
    );
    let queued = format!(
        "SELECT count(*) AS n FROM communication_log WHERE tenant_id = '{}' AND outreach_email_id IS NOT NULL",
        t.id
    );
    assert_eq!(count(&app, &queued).await, 0);
    // A completed campaign is done for good.
    let r = app
        .gql(&t.admin_key, CAMPAIGN, json!({ "i": { "name": "Done" } }))
        .await;
    let done = r["data"]["createOutreachCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .gql(
            &t.admin_key,
            UPDATE,
            json!({ "i": { "id": done, "status": "COMPLETED" } }),
        )
        .await;
    assert_eq!(
        r["data"]["updateOutreachCampaign"]["campaign"]["status"], "COMPLETED",
        "{r}"
    );
    for (status, mutation) in [("ACTIVE", UPDATE), ("", GENERATE)] {
        let r = match status {
            "" => app.gql(&t.admin_key, mutation, json!({ "c": done })).await,
            _ => {
                app.gql(
                    &t.admin_key,
                    mutation,
                    json!({ "i": { "id": done, "status": status } }),
                )
                .await
            }
        };
        let name = if status.is_empty() {
            "generateOutreachEmails"
        } else {
            "updateOutreachCampaign"
        };
        assert_eq!(errors(&r, name)[0]["code"], "INVALID_TRANSITION", "{r}");
    }
    let r = app
        .gql(
            &t.admin_key,
            UPDATE,
            json!({ "i": { "id": campaign, "status": "ACTIVE" } }),
        )
        .await;
    assert_eq!(
        r["data"]["updateOutreachCampaign"]["campaign"]["status"], "ACTIVE",
        "{r}"
    );
    assert_eq!(count(&app, &queued).await, 1);
    // Approved while active: queued at once; approving twice is refused.
    let r = app
        .gql(&t.admin_key, APPROVE, json!({ "id": brasserie }))
        .await;
    assert_eq!(errors(&r, "approveOutreachEmail"), json!([]), "{r}");
    let r = app
        .gql(&t.admin_key, APPROVE, json!({ "id": brasserie }))
        .await;
    assert_eq!(
        errors(&r, "approveOutreachEmail")[0]["code"],
        "INVALID_TRANSITION"
    );
    assert_eq!(count(&app, &queued).await, 2);

    // Sent through a real SMTP server; the send moves the emails and their funnel.
    assert_eq!(run(&app, &t, &providers).await, 2);
    let mails = sink.received();
    assert_eq!(mails.len(), 2);
    let to_bistro = mails
        .iter()
        .find(|m| m.contains("To: chef@bistro.example"))
        .expect("a mail to the bistro");
    assert!(
        to_bistro.contains("Subject: Wines for Bistro"),
        "{to_bistro}"
    );
    assert!(to_bistro.contains("Hello Anne of Bistro"), "{to_bistro}");
    let state = campaign_state(&app, &t.admin_key, &campaign).await;
    assert_eq!(email_of(&state, "Bistro", 1)["status"], "SENT");
    assert_eq!(state["metrics"]["sent"], 2);
    let logs = format!(
        "SELECT count(*) AS n FROM prospect_outreach_log WHERE tenant_id = '{}' AND status = 'sent'",
        t.id
    );
    assert_eq!(count(&app, &logs).await, 2);
    let contacted = format!(
        "SELECT count(*) AS n FROM prospect_candidates WHERE tenant_id = '{}' AND contacted",
        t.id
    );
    assert_eq!(count(&app, &contacted).await, 2);

    // A reply implies the open and the delivery; an open after it moves nothing back.
    let r = app
        .gql(
            &t.admin_key,
            EVENT,
            json!({ "e": bistro, "a": "REPLIED", "r": "Send us your list" }),
        )
        .await;
    assert_eq!(errors(&r, "recordOutreachEvent"), json!([]), "{r}");
    let r = app
        .gql(&t.admin_key, EVENT, json!({ "e": bistro, "a": "OPENED" }))
        .await;
    assert_eq!(errors(&r, "recordOutreachEvent"), json!([]), "{r}");
    let r = app
        .gql(
            &t.admin_key,
            EVENT,
            json!({ "e": bistro, "a": "OPENED", "r": "text" }),
        )
        .await;
    assert_eq!(
        errors(&r, "recordOutreachEvent")[0]["field"],
        json!(["input", "replyContent"])
    );
    let state = campaign_state(&app, &t.admin_key, &campaign).await;
    let replied = email_of(&state, "Bistro", 1);
    assert_eq!(replied["status"], "REPLIED");
    assert!(
        replied["openedAt"].is_string() && replied["repliedAt"].is_string(),
        "{replied}"
    );
    assert_eq!(
        state["metrics"],
        json!({ "sent": 2, "delivered": 1, "opened": 1, "replied": 1, "bounced": 0,
                "openRate": 0.5, "replyRate": 0.5, "bounceRate": 0.0 })
    );
    let reply = format!(
        "SELECT count(*) AS n FROM prospect_outreach_log WHERE tenant_id = '{}' AND status = 'replied' AND reply_content = 'Send us your list'",
        t.id
    );
    assert_eq!(count(&app, &reply).await, 1);
    let r = app
        .gql(&t.admin_key, "{ prospectIndustryPerformance { industry totalContacted totalOpened totalReplied openRate replyRate priorityScore avgResponseTimeHours } }", json!({}))
        .await;
    let industry = &r["data"]["prospectIndustryPerformance"][0];
    assert_eq!(industry["industry"], "restaurant", "{r}");
    assert_eq!(
        (
            &industry["totalContacted"],
            &industry["totalOpened"],
            &industry["totalReplied"],
            &industry["replyRate"],
            &industry["priorityScore"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!(0.5), &json!(50))
    );
    assert!(industry["avgResponseTimeHours"].is_number(), "{industry}");

    // Follow-ups: three days on, the prospect who did not reply gets one (as a reply to
    // the first email); the one who replied does not; a second tick writes nothing more.
    let ran = tick(&app, &t, Utc::now() + Duration::days(4)).await;
    assert!(
        ran.iter()
            .any(|(task, result)| *task == "outreach_follow_ups" && result["queued"] == 1),
        "{ran:?}"
    );
    let ran = tick(&app, &t, Utc::now() + Duration::days(4)).await;
    assert!(
        !ran.iter().any(|(task, _)| *task == "outreach_follow_ups"),
        "{ran:?}"
    );
    assert_eq!(run(&app, &t, &providers).await, 1);
    let state = campaign_state(&app, &t.admin_key, &campaign).await;
    let follow_up = email_of(&state, "Brasserie", 2);
    assert_eq!(follow_up["subject"], "Re: Wines for Brasserie");
    assert_eq!(follow_up["status"], "SENT");
    assert!(sink
        .received()
        .iter()
        .any(|m| m.contains("Subject: Re: Wines for Brasserie")));
    assert_eq!(state["metrics"]["sent"], 3);
    // The schedule has one step: no third email, ever.
    let ran = tick(&app, &t, Utc::now() + Duration::days(30)).await;
    assert!(
        !ran.iter().any(|(task, _)| *task == "outreach_follow_ups"),
        "{ran:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_events_count_each_step_once_and_never_move_an_email_back() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Racing Events").await;
    let mut conn = app.owner().await;
    use diesel_async::SimpleAsyncConnection;
    conn.batch_execute(&format!(
        "INSERT INTO prospect_candidates (tenant_id, business_name, website, industry)
             SELECT '{t}', 'Shop ' || i, 'shop' || i || '.example', 'retail' FROM generate_series(1, 12) i;
         INSERT INTO outreach_campaigns (tenant_id, name, status) VALUES ('{t}', 'Race', 'active');
         INSERT INTO outreach_emails (tenant_id, campaign_id, prospect_id, prospect_email, company_name, subject, content, status)
             SELECT '{t}', c.id, p.id, 'x@' || p.website, p.business_name, 'Hi', 'Hello', 'approved'
             FROM prospect_candidates p, outreach_campaigns c WHERE p.tenant_id = '{t}' AND c.tenant_id = '{t}';",
        t = t.id
    ))
    .await
    .unwrap();
    let emails: Vec<String> = app
        .gql(
            &t.admin_key,
            "{ outreachEmails(first: 50) { nodes { id } } }",
            json!({}),
        )
        .await["data"]["outreachEmails"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(emails.len(), 12);
    // Every email gets each of these (twice for opens) at once, in no set order.
    let actions = [
        "SENT",
        "DELIVERED",
        "OPENED",
        "OPENED",
        "CLICKED",
        "REPLIED",
        "BOUNCED",
    ];
    let (app, key) = (&app, &t.admin_key);
    let calls = emails.iter().flat_map(|e| {
        actions
            .iter()
            .map(move |a| async move { app.gql(key, EVENT, json!({ "e": e, "a": a })).await })
    });
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(errors(&r, "recordOutreachEvent"), json!([]), "{r}");
    }
    let state = app
        .gql(&t.admin_key, "{ outreachCampaigns { nodes { metrics { sent delivered opened clicked replied bounced openRate replyRate bounceRate clickToOpenRate } } } outreachEmails(first: 50) { nodes { status } } }", json!({}))
        .await;
    let m = &state["data"]["outreachCampaigns"]["nodes"][0]["metrics"];
    // Each email counts once per step, whatever the order of its events.
    assert_eq!(
        (
            &m["sent"],
            &m["delivered"],
            &m["opened"],
            &m["clicked"],
            &m["replied"],
            &m["bounced"]
        ),
        (
            &json!(12),
            &json!(12),
            &json!(12),
            &json!(12),
            &json!(12),
            &json!(12)
        ),
        "{state}"
    );
    for rate in ["openRate", "replyRate", "bounceRate", "clickToOpenRate"] {
        assert!(m[rate].as_f64().unwrap() <= 1.0, "{rate} {m}");
    }
    // A reply or a bounce ended each email; nothing went back to an earlier state.
    for e in state["data"]["outreachEmails"]["nodes"].as_array().unwrap() {
        assert!(
            ["REPLIED", "BOUNCED"].contains(&e["status"].as_str().unwrap()),
            "{e}"
        );
    }
    let stored = format!(
        "SELECT count(*) AS n FROM outreach_metrics WHERE tenant_id = '{}' AND total_emails_sent = 12
           AND open_rate = 1 AND reply_rate = 1 AND bounce_rate = 1 AND click_rate = 1",
        t.id
    );
    assert_eq!(count(app, &stored).await, 1);
    let industry = format!(
        "SELECT count(*) AS n FROM prospect_industry_performance WHERE tenant_id = '{}'
           AND total_contacted = 12 AND total_opened = 12 AND total_replied = 12 AND reply_rate = 1
           AND priority_score = 100",
        t.id
    );
    assert_eq!(count(app, &industry).await, 1);
    let logs = format!(
        "SELECT count(*) AS n FROM prospect_outreach_log WHERE tenant_id = '{}'",
        t.id
    );
    assert_eq!(count(app, &logs).await, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prospects_and_outreach_stay_within_their_tenant() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.bare_tenant("Winery B").await;
    let r = app
        .gql(&a.admin_key, "{ prospectCandidates(first: 10) { nodes { id formTests { id } } } outreachEmails(first: 10) { nodes { id status } } outreachCampaigns { nodes { id } } prospectIndustryPerformance { industry } }", json!({}))
        .await;
    let candidate = r["data"]["prospectCandidates"]["nodes"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let email = r["data"]["outreachEmails"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let campaign = r["data"]["outreachCampaigns"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!r["data"]["prospectIndustryPerformance"]
        .as_array()
        .unwrap()
        .is_empty());

    let r = app
        .gql(&b.admin_key, "query($c: ID!) { prospectCandidates(first: 10) { nodes { id } } prospectCandidate(id: $c) { id } prospectIndustryPerformance { industry } }", json!({ "c": candidate }))
        .await;
    assert_eq!(r["data"]["prospectCandidates"]["nodes"], json!([]), "{r}");
    assert!(r["data"]["prospectCandidate"].is_null());
    assert_eq!(r["data"]["prospectIndustryPerformance"], json!([]));
    for (mutation, vars, name) in [
        ("mutation($id: ID!) { recordFormTest(input: { prospectId: $id }) { userErrors { code } } }", json!({ "id": candidate }), "recordFormTest"),
        (APPROVE, json!({ "id": email }), "approveOutreachEmail"),
        (REJECT, json!({ "id": email }), "rejectOutreachEmail"),
        (GENERATE, json!({ "c": campaign }), "generateOutreachEmails"),
        (UPDATE, json!({ "i": { "id": campaign, "status": "PAUSED" } }), "updateOutreachCampaign"),
        (EVENT, json!({ "e": email, "a": "OPENED" }), "recordOutreachEvent"),
    ] {
        let r = app.gql(&b.admin_key, mutation, vars).await;
        assert_eq!(errors(&r, name)[0]["code"], "NOT_FOUND", "{name}: {r}");
    }
    // The same website in two tenants: two candidates.
    let p = import(
        &app,
        &b.admin_key,
        json!([{ "businessName": "Lyon", "website": "cave-lyon.example" }]),
    )
    .await;
    assert_eq!(p["userErrors"], json!([]), "{p}");
    let r = app
        .gql(
            &a.admin_key,
            "{ outreachEmails(first: 10) { nodes { status } } }",
            json!({}),
        )
        .await;
    assert!(r["data"]["outreachEmails"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["status"] != "PENDING"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribed_prospect_gets_no_follow_up() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Opt Out").await;
    let mut owner = app.owner().await;
    use diesel_async::SimpleAsyncConnection;
    owner
        .batch_execute(&format!(
            "INSERT INTO email_templates (tenant_id, name, subject, html_content) VALUES ('{t}', 'Intro', 'Hello', '<p>Hello</p>');
             INSERT INTO prospect_candidates (tenant_id, business_name, website, contact_email, contacted)
                 VALUES ('{t}', 'Stays', 'stays.example', 'a@stays.example', true), ('{t}', 'Leaves', 'leaves.example', 'a@leaves.example', true);
             INSERT INTO outreach_campaigns (tenant_id, name, status, email_template_id, follow_up_schedule)
                 SELECT '{t}', 'Opt-out', 'active', id, '[{{\"afterDays\": 1}}]' FROM email_templates WHERE tenant_id = '{t}';
             INSERT INTO outreach_emails (tenant_id, campaign_id, prospect_id, prospect_email, company_name, subject, content,
                                          status, sent_at, funnel_counted)
                 SELECT '{t}', c.id, p.id, p.contact_email, p.business_name, 'Hello', '<p>Hello</p>', 'sent',
                        now() - interval '2 days', '{{sent}}'
                 FROM prospect_candidates p, outreach_campaigns c WHERE p.tenant_id = '{t}' AND c.tenant_id = '{t}';",
            t = t.id
        ))
        .await
        .unwrap();
    let r = app
        .gql(
            &t.admin_key,
            "{ outreachEmails(first: 10) { nodes { id companyName } } }",
            json!({}),
        )
        .await;
    let leaves = r["data"]["outreachEmails"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["companyName"] == "Leaves")
        .unwrap()["id"]
        .clone();
    let r = app
        .gql(
            &t.admin_key,
            EVENT,
            json!({ "e": leaves, "a": "UNSUBSCRIBED" }),
        )
        .await;
    assert_eq!(errors(&r, "recordOutreachEvent"), json!([]), "{r}");
    let ran = tick(&app, &t, Utc::now()).await;
    assert!(
        ran.iter()
            .any(|(task, result)| *task == "outreach_follow_ups" && result["queued"] == 1),
        "{ran:?}"
    );
    let follow_ups = format!(
        "SELECT count(*) AS n FROM outreach_emails e JOIN prospect_candidates p ON p.id = e.prospect_id
          WHERE e.tenant_id = '{}' AND e.follow_up_sequence = 2 AND p.business_name = 'Stays'",
        t.id
    );
    assert_eq!(count(&app, &follow_ups).await, 1);
    let all = format!(
        "SELECT count(*) AS n FROM outreach_emails WHERE tenant_id = '{}' AND follow_up_sequence = 2",
        t.id
    );
    assert_eq!(count(&app, &all).await, 1);
}

/// An update sets the fields it is given in one statement (the name trimmed), leaves the
/// others as they are, and writes nothing when it is given nothing to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outreach_campaign_update_sets_the_fields_given_at_once() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Outreach U").await;
    let r = app
        .gql(&t.admin_key, CAMPAIGN, json!({ "i": { "name": "Q1" } }))
        .await;
    let id = r["data"]["createOutreachCampaign"]["campaign"]["id"].clone();
    const SHOW: &str = "mutation($i: OutreachCampaignInput!) { updateOutreachCampaign(input: $i) { campaign { name status targetCriteria followUpSchedule } userErrors { code } } }";
    let update = |input: Value| {
        let (app, key) = (&app, t.admin_key.clone());
        async move {
            let request = app.gql(&key, SHOW, json!({ "i": input }));
            let (r, cost) = crate::common::statements_of(app, request).await;
            let p = &r["data"]["updateOutreachCampaign"];
            assert_eq!(p["userErrors"], json!([]), "{r}");
            (p["campaign"].clone(), cost)
        }
    };
    // A first update before the measured ones, so that each of them follows an update.
    update(json!({ "id": id, "name": "Q1" })).await;
    let (first, name_only) = update(json!({ "id": id, "name": "  Q2  " })).await;
    assert_eq!(first["name"], "Q2");
    assert_eq!(first["status"], "DRAFT");
    let (second, three_fields) = update(json!({ "id": id, "name": "Q3",
        "target": { "industry": "restaurant" }, "followUpSchedule": [{ "afterDays": 3 }] }))
    .await;
    assert_eq!(second["name"], "Q3");
    assert_eq!(second["targetCriteria"]["industry"], "restaurant");
    assert_eq!(second["followUpSchedule"].as_array().map(Vec::len), Some(1));
    assert_ne!(second["targetCriteria"], first["targetCriteria"]);
    assert_eq!(name_only, three_fields, "one field or three: one UPDATE");
    let (third, nothing) = update(json!({ "id": id })).await;
    assert_eq!(third, second, "nothing given, nothing changes");
    assert_eq!(nothing + 1, name_only, "nothing to change: no UPDATE");
    let (fourth, _) = update(json!({ "id": id, "status": "ACTIVE" })).await;
    assert_eq!(fourth["status"], "ACTIVE");
    assert_eq!(fourth["name"], "Q3", "the other fields stay");
    assert_eq!(fourth["followUpSchedule"], second["followUpSchedule"]);
}

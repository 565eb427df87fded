//! Leads, their audit trail, and growth insights checked against figures computed here.

use std::collections::BTreeMap;

use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use growthgraph::auth::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{error_code, TestApp, TestTenant};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut owner = app.owner().await;
    diesel::sql_query(sql)
        .get_result::<Count>(&mut owner)
        .await
        .unwrap()
        .n
}

const INGEST: &str = "mutation($input: IngestLeadInput!) { ingestLead(input: $input) { lead { id currentTag } userErrors { field code message } } }";

fn act(name: &str, extra: &str) -> String {
    format!("mutation($id: ID!) {{ {name}(input: {{ leadId: $id {extra} }}) {{ lead {{ id archived deleted currentTag }} userErrors {{ field code }} }} }}")
}

async fn run(app: &TestApp, t: &TestTenant, name: &str, extra: &str, id: &str) -> Value {
    let r = app
        .gql(&t.admin_key, &act(name, extra), json!({ "id": id }))
        .await;
    r["data"][name].clone()
}

fn code(payload: &Value) -> Option<&str> {
    payload["userErrors"][0]["code"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lead_action_is_audited_once_and_refused_transitions_write_nothing() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Leads A").await;
    let partner = app.key(&t, Role::Partner).await;
    let r = app
        .gql(&partner, INGEST, json!({ "input": { "name": "Ana", "email": "ana@bistro.example", "message": "20 cases a month?", "language": "FR",
            "intent": "B2B partnership", "tone": "Professional", "urgency": "HIGH", "confidenceScore": "0.91", "idempotencyKey": "form-1" } }))
        .await;
    let id = r["data"]["ingestLead"]["lead"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let replay = app.gql(&partner, INGEST, json!({ "input": { "name": "Ana", "email": "ana@bistro.example", "message": "20 cases a month?", "language": "FR",
            "intent": "B2B partnership", "tone": "Professional", "urgency": "HIGH", "confidenceScore": "0.91", "idempotencyKey": "form-1" } })).await;
    assert_eq!(
        replay["data"]["ingestLead"]["lead"]["id"],
        id.as_str(),
        "idempotent ingest"
    );
    // Partners ingest but do not curate.
    let r = app
        .gql(
            &partner,
            &act("tagLead", ", tag: \"x\""),
            json!({ "id": id }),
        )
        .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN");

    assert_eq!(
        code(&run(&app, &t, "tagLead", ", tag: \"no/slashes!\"", &id).await),
        Some("INVALID")
    );
    let p = run(&app, &t, "tagLead", ", tag: \"Lead Chaud\"", &id).await;
    assert_eq!(p["lead"]["currentTag"], "Lead Chaud");
    assert_eq!(
        run(&app, &t, "archiveLead", "", &id).await["lead"]["archived"],
        true
    );
    assert_eq!(
        code(&run(&app, &t, "archiveLead", "", &id).await),
        Some("INVALID_TRANSITION")
    );
    let listed = app
        .gql(&t.admin_key, "{ leads { nodes { id } } }", json!({}))
        .await;
    assert!(
        !listed.to_string().contains(&id),
        "archived leads are hidden by default"
    );
    let listed = app
        .gql(
            &t.admin_key,
            "{ leads(filter: { archived: true }) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert!(listed.to_string().contains(&id));
    assert_eq!(
        run(&app, &t, "reactivateLead", "", &id).await["lead"]["archived"],
        false
    );
    assert_eq!(
        code(&run(&app, &t, "reactivateLead", "", &id).await),
        Some("INVALID_TRANSITION")
    );

    // Conversion links the lead to the customer's 360 and leaves a feedback record.
    assert_eq!(
        code(&run(&app, &t, "revertLeadConversion", ", reason: \"x\"", &id).await),
        Some("INVALID_TRANSITION")
    );
    assert_eq!(
        run(&app, &t, "convertLead", "", &id).await["lead"]["currentTag"],
        "Converted"
    );
    assert_eq!(
        code(&run(&app, &t, "convertLead", "", &id).await),
        Some("INVALID_TRANSITION")
    );
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID!) { lead(id: $id) { customer { email leads { id } } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(r["data"]["lead"]["customer"]["email"], "ana@bistro.example");
    assert_eq!(r["data"]["lead"]["customer"]["leads"][0]["id"], id.as_str());
    let p = run(&app, &t, "revertLeadConversion", ", reason: \"   \"", &id).await;
    assert_eq!(
        (code(&p), &p["userErrors"][0]["field"]),
        (Some("INVALID"), &json!(["input", "reason"]))
    );
    assert!(run(
        &app,
        &t,
        "revertLeadConversion",
        ", reason: \"Duplicate order\"",
        &id
    )
    .await["lead"]["id"]
        .is_string());
    assert_eq!(count(&app, &format!("SELECT count(*) AS n FROM feedback_tracking WHERE lead_id = '{id}' AND expires_at > now() + interval '364 days'")).await, 2);

    // Notes, analysis history.
    let r = app.gql(&t.admin_key, "mutation($id: ID!) { addLeadNote(input: { leadId: $id, note: \"Call back Tuesday\" }) { note { id } } }", json!({ "id": id })).await;
    let note = r["data"]["addLeadNote"]["note"]["id"].clone();
    let r = app.gql(&t.admin_key, "mutation($id: ID!) { updateLeadNote(input: { noteId: $id, note: \"Call back Wednesday\" }) { note { note } } }", json!({ "id": note })).await;
    assert_eq!(
        r["data"]["updateLeadNote"]["note"]["note"],
        "Call back Wednesday"
    );
    for tone in ["Friendly", "Friendly"] {
        app.gql(&t.admin_key, "mutation($id: ID!, $t: String) { updateLeadAnalysis(input: { leadId: $id, tone: $t, confidenceScore: \"0.75\" }) { lead { tone } } }", json!({ "id": id, "t": tone })).await;
    }
    let r = app.gql(&t.admin_key, "query($id: ID!) { lead(id: $id) { notes { note } history { tone { value } confidence { value } urgency { value } } actions { action tag reversionReason conversionOutcome } } }", json!({ "id": id })).await;
    let lead = &r["data"]["lead"];
    assert_eq!(
        lead["history"]["tone"],
        json!([{ "value": "Professional" }, { "value": "Friendly" }])
    );
    assert_eq!(lead["history"]["confidence"].as_array().unwrap().len(), 2);
    assert_eq!(lead["history"]["urgency"].as_array().unwrap().len(), 1);

    // Deleted: hidden, and every further action refused.
    assert_eq!(
        run(&app, &t, "deleteLead", "", &id).await["lead"]["deleted"],
        true
    );
    for (name, extra) in [
        ("tagLead", ", tag: \"x\""),
        ("archiveLead", ""),
        ("reactivateLead", ""),
        ("deleteLead", ""),
        ("convertLead", ""),
    ] {
        assert_eq!(
            code(&run(&app, &t, name, extra, &id).await),
            Some("INVALID_TRANSITION"),
            "{name} on a deleted lead"
        );
    }
    let listed = app
        .gql(&t.admin_key, "{ leads { nodes { id } } }", json!({}))
        .await;
    assert!(!listed.to_string().contains(&id));

    // Exactly one audit row per successful action, in order.
    let actions: Vec<&str> = lead["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "CREATED",
            "TAGGED",
            "ARCHIVED",
            "REACTIVATED",
            "CONVERTED",
            "REVERTED"
        ]
    );
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) AS n FROM lead_actions WHERE lead_id = '{id}'")
        )
        .await,
        7
    );
    let reverted = &lead["actions"][5];
    assert_eq!(
        (
            reverted["reversionReason"].as_str(),
            reverted["conversionOutcome"].as_bool()
        ),
        (Some("Duplicate order"), Some(false))
    );
    assert_eq!(lead["actions"][4]["conversionOutcome"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tagging_audits_every_tag_and_the_last_one_wins() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Leads A").await;
    let r = app
        .gql(
            &t.admin_key,
            INGEST,
            json!({ "input": { "name": "Bo", "email": "bo@example.com" } }),
        )
        .await;
    let id = r["data"]["ingestLead"]["lead"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tags: Vec<String> = (0..10).map(|i| format!("tag {i}")).collect();
    let results = futures_util::future::join_all(tags.iter().map(|tag| {
        app.gql(&t.admin_key, "mutation($id: ID!, $t: String!) { tagLead(input: { leadId: $id, tag: $t }) { userErrors { code } } }", json!({ "id": id, "t": tag }))
    }))
    .await;
    assert!(
        results.iter().all(|r| r["data"]["tagLead"]["userErrors"]
            .as_array()
            .unwrap()
            .is_empty()),
        "{results:?}"
    );
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID!) { lead(id: $id) { currentTag actions { action tag } } }",
            json!({ "id": id }),
        )
        .await;
    let tagged: Vec<&str> = r["data"]["lead"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "TAGGED")
        .map(|a| a["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tagged.len(), 10);
    let distinct: std::collections::HashSet<_> = tagged.iter().collect();
    assert_eq!(distinct.len(), 10, "each tag audited once");
    assert_eq!(
        r["data"]["lead"]["currentTag"],
        *tagged.last().unwrap(),
        "the last tag wins"
    );
}

struct L {
    intent: Option<&'static str>,
    tone: Option<&'static str>,
    urgency: &'static str,
    confidence: Option<f64>,
    language: &'static str,
    day: u32,
    archived: bool,
    deleted: bool,
}

async fn insert_leads(app: &TestApp, t: &TestTenant, leads: &[L]) {
    let mut sql = String::new();
    for (i, l) in leads.iter().enumerate() {
        let opt = |v: Option<&str>| v.map(|v| format!("'{v}'")).unwrap_or_else(|| "NULL".into());
        sql.push_str(&format!(
            "INSERT INTO lead_memory (tenant_id, name, email, intent, tone, urgency, confidence_score, language, archived, deleted, created_at)
             VALUES ('{}', 'L{i}', 'l{i}@example.com', {}, {}, '{}', {}, '{}', {}, {}, timestamptz '2026-01-01 00:00:00+00' + interval '{} days' + interval '{} hours');",
            t.id,
            opt(l.intent),
            opt(l.tone),
            l.urgency,
            l.confidence.map(|c| c.to_string()).unwrap_or_else(|| "NULL".into()),
            l.language,
            l.archived,
            l.deleted,
            i64::from(l.day) - 1,
            i % 12,
        ));
    }
    app.owner().await.batch_execute(&sql).await.unwrap();
}

const INSIGHTS: &str = "mutation($s: DateTime, $e: DateTime) { refreshGrowthInsights(input: { periodStart: $s, periodEnd: $e }) {
  growthInsights { totalLeads topIntents { intent count share } urgencyDistribution { high medium low } urgencyTrendPercentage
    toneDistribution { tone count share } toneSentimentScore avgConfidence confidenceTrajectory { date avgConfidence }
    languageRatio { en fr } engagementScore en: predictiveInsights(language: EN) { summary recommendations }
    fr: predictiveInsights(language: FR) { summary recommendations } analysisPeriodStart analysisPeriodEnd }
  userErrors { field code } } }";

fn round(v: f64, d: i32) -> f64 {
    let f = 10f64.powi(d);
    (v * f).round() / f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growth_insights_match_figures_computed_independently() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Insights A").await;
    let live = |intent, tone, urgency, confidence, language, day| L {
        intent,
        tone,
        urgency,
        confidence,
        language,
        day,
        archived: false,
        deleted: false,
    };
    let mut leads = vec![
        live(
            Some("B2B"),
            Some("Professional"),
            "high",
            Some(0.90),
            "en",
            28,
        ),
        live(
            Some("Event"),
            Some("Friendly"),
            "high",
            Some(0.70),
            "fr",
            27,
        ),
        live(Some("B2B"), Some("Formal"), "medium", Some(0.80), "en", 20),
        live(Some("Event"), Some("Friendly"), "low", Some(0.50), "en", 20),
        live(Some("Club"), Some("Energetic"), "high", None, "en", 18),
        live(
            Some("Gift"),
            Some("Professional"),
            "low",
            Some(0.60),
            "fr",
            5,
        ),
        live(
            Some("Shipping"),
            Some("Professionnel"),
            "high",
            Some(0.95),
            "en",
            2,
        ),
        live(Some("Wholesale"), None, "medium", Some(0.40), "fr", 10),
        live(None, Some("Friendly"), "high", Some(0.30), "en", 21),
    ];
    let excluded = [
        L {
            archived: true,
            ..live(
                Some("B2B"),
                Some("Professional"),
                "high",
                Some(0.99),
                "en",
                25,
            )
        },
        L {
            deleted: true,
            ..live(Some("Zeta"), Some("Formal"), "high", Some(0.99), "fr", 25)
        },
    ];
    let mut all: Vec<L> = Vec::new();
    all.append(&mut leads);
    insert_leads(&app, &t, &all).await;
    insert_leads(&app, &t, &excluded).await;
    // Outside the period.
    app.owner().await.batch_execute(&format!(
        "INSERT INTO lead_memory (tenant_id, name, email, intent, urgency, language, created_at) VALUES ('{}', 'Old', 'old@example.com', 'B2B', 'high', 'en', '2025-12-31 23:00:00+00')", t.id
    )).await.unwrap();

    let start = "2026-01-01T00:00:00Z";
    let end = "2026-01-31T00:00:00Z";
    let r = app
        .gql(&t.admin_key, INSIGHTS, json!({ "s": start, "e": end }))
        .await;
    let g = &r["data"]["refreshGrowthInsights"]["growthInsights"];
    assert!(r["errors"].is_null(), "{r}");

    // ---- the same figures, computed here from the rows above ----
    let total = all.len() as f64;
    assert_eq!(g["totalLeads"], all.len());
    let mut intents: BTreeMap<&str, i64> = BTreeMap::new();
    for l in &all {
        if let Some(i) = l.intent {
            *intents.entry(i).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&str, i64)> = intents.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked.truncate(5);
    let expected_intents: Vec<Value> = ranked
        .iter()
        .map(|(i, c)| json!({ "intent": i, "count": c, "share": round(*c as f64 / total, 4) }))
        .collect();
    assert_eq!(
        g["topIntents"],
        json!(expected_intents),
        "ties (B2B/Event with 2, then Club, Gift, Shipping alphabetically) resolved by name"
    );
    let urgency = |u: &str| all.iter().filter(|l| l.urgency == u).count();
    assert_eq!(
        g["urgencyDistribution"],
        json!({ "high": urgency("high"), "medium": urgency("medium"), "low": urgency("low") })
    );
    // Week over week: high urgency in [Jan 24, Jan 31) vs [Jan 17, Jan 24).
    let high_in = |from: u32, to: u32| {
        all.iter()
            .filter(|l| l.urgency == "high" && l.day > from && l.day <= to)
            .count() as f64
    };
    let (now, before) = (high_in(23, 30), high_in(16, 23));
    assert_eq!(
        g["urgencyTrendPercentage"].as_f64().unwrap(),
        round((now - before) / before * 100.0, 2)
    );
    let professional = all
        .iter()
        .filter(|l| matches!(l.tone, Some("Professional" | "Formal" | "Professionnel")))
        .count() as f64;
    assert_eq!(
        g["toneSentimentScore"].as_f64().unwrap(),
        round(100.0 * professional / total, 2)
    );
    let confidences: Vec<f64> = all.iter().filter_map(|l| l.confidence).collect();
    let avg = confidences.iter().sum::<f64>() / confidences.len() as f64;
    assert_eq!(g["avgConfidence"].as_f64().unwrap(), round(avg, 3));
    let mut days: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for l in &all {
        if let Some(c) = l.confidence {
            days.entry(l.day).or_default().push(c);
        }
    }
    let trajectory: Vec<Value> = days
        .iter()
        .map(|(d, cs)| json!({ "date": format!("2026-01-{d:02}"), "avgConfidence": round(cs.iter().sum::<f64>() / cs.len() as f64, 3) }))
        .collect();
    assert_eq!(g["confidenceTrajectory"], json!(trajectory));
    let fr = all.iter().filter(|l| l.language == "fr").count() as f64;
    assert_eq!(
        g["languageRatio"],
        json!({ "en": round((total - fr) / total, 4), "fr": round(fr / total, 4) })
    );
    let engagement = 50.0 * round(avg, 3)
        + 30.0 * urgency("high") as f64 / total
        + 15.0 * urgency("medium") as f64 / total
        + 20.0 * total.min(100.0) / 100.0;
    assert_eq!(g["engagementScore"].as_f64().unwrap(), round(engagement, 2));
    let tones = g["toneDistribution"].as_array().unwrap();
    assert_eq!(
        tones[0],
        json!({ "tone": "Friendly", "count": 3, "share": round(3.0 / total, 4) })
    );
    assert!(
        g["en"]["summary"].as_str().unwrap().contains("B2B")
            && g["fr"]["summary"].as_str().unwrap().contains("B2B")
    );
    assert!(g["en"]["recommendations"].to_string().contains("English"));

    // Stored: growthInsights returns the same row.
    let stored = app
        .gql(
            &t.admin_key,
            "{ growthInsights { totalLeads engagementScore } }",
            json!({}),
        )
        .await;
    assert_eq!(
        stored["data"]["growthInsights"]["totalLeads"],
        g["totalLeads"]
    );

    // Empty period; single language; end before start.
    let r = app
        .gql(
            &t.admin_key,
            INSIGHTS,
            json!({ "s": "2024-01-01T00:00:00Z", "e": "2024-02-01T00:00:00Z" }),
        )
        .await;
    let g = &r["data"]["refreshGrowthInsights"]["growthInsights"];
    assert_eq!(
        (
            g["totalLeads"].as_i64(),
            g["topIntents"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );
    assert_eq!(g["languageRatio"], json!({ "en": 0.0, "fr": 0.0 }));
    assert!(g["avgConfidence"].is_null());
    assert_eq!(g["en"]["summary"], "No live leads in this period.");
    let r = app
        .gql(
            &t.admin_key,
            INSIGHTS,
            json!({ "s": "2026-01-01T00:00:00Z", "e": "2026-01-03T00:00:00Z" }),
        )
        .await;
    assert_eq!(
        r["data"]["refreshGrowthInsights"]["growthInsights"]["languageRatio"],
        json!({ "en": 1.0, "fr": 0.0 })
    );
    let r = app
        .gql(&t.admin_key, INSIGHTS, json!({ "s": end, "e": start }))
        .await;
    assert_eq!(
        r["data"]["refreshGrowthInsights"]["userErrors"][0]["field"],
        json!(["input", "periodEnd"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_page_forward_and_backward_in_either_order_through_ties() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Paged leads").await;
    // Eleven leads at four instants (ties broken by id), three of them archived.
    app.insert_for(
        &t,
        "INSERT INTO lead_memory (tenant_id, name, email, archived, created_at)
         SELECT $1, 'L' || i, 'l' || i || '@example.com', i % 4 = 1,
                timestamptz '2026-01-01 00:00:00+00' + (i / 3) * interval '1 day'
         FROM generate_series(0, 10) AS i",
    )
    .await;
    for archived in [false, true] {
        let newest_first = app
            .ids_by_sql(
                "lead_memory",
                &t,
                Some(("archived::text", &archived.to_string())),
            )
            .await;
        assert_eq!(newest_first.len(), if archived { 3 } else { 8 });
        let oldest_first: Vec<String> = newest_first.iter().rev().cloned().collect();
        for (direction, expected) in [
            ("", &newest_first),
            ("DESC", &newest_first),
            ("ASC", &oldest_first),
        ] {
            let order = match direction {
                "" => String::new(),
                d => format!(", orderBy: {{ direction: {d} }}"),
            };
            let args = format!(", filter: {{ archived: {archived} }}{order}");
            let forward = app.page_ids(&t.admin_key, "leads", &args).await;
            assert_eq!(&forward, expected, "forward{args}");
            let backward = app.page_ids_backward(&t.admin_key, "leads", &args).await;
            assert_eq!(&backward, expected, "backward{args}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_and_insights_are_isolated_between_tenants() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let b_lead = app
        .gql(
            &b.admin_key,
            "{ leads(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await["data"]["leads"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let foreign = app
        .gql(
            &a.admin_key,
            "query($id: ID!) { lead(id: $id) { id } }",
            json!({ "id": b_lead }),
        )
        .await;
    assert!(foreign["data"]["lead"].is_null());
    let listed = app.gql(&a.admin_key, "{ leads(first: 100, filter: { archived: true }) { nodes { id } } all: leads(first: 100) { nodes { id } } }", json!({})).await;
    assert!(!listed.to_string().contains(&b_lead));
    for (name, extra) in [
        ("tagLead", ", tag: \"x\""),
        ("archiveLead", ""),
        ("deleteLead", ""),
        ("convertLead", ""),
        ("revertLeadConversion", ", reason: \"r\""),
    ] {
        let f = run(&app, &a, name, extra, &b_lead).await;
        let r = run(&app, &a, name, extra, &Uuid::new_v4().to_string()).await;
        assert_eq!(f, r, "{name}");
        assert_eq!(code(&f), Some("NOT_FOUND"));
    }
    let r = app.gql(&a.admin_key, "mutation($id: ID!) { addLeadNote(input: { leadId: $id, note: \"n\" }) { userErrors { code } } }", json!({ "id": b_lead })).await;
    assert_eq!(
        r["data"]["addLeadNote"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
    assert_eq!(count(&app, &format!("SELECT count(*) AS n FROM lead_actions WHERE lead_id = '{b_lead}' AND action_type <> 'created' AND performed_by = 'api'")).await, 0);

    // Insights: each tenant's refresh sees its own leads only.
    app.gql(&b.admin_key, "mutation { ingestLead(input: { name: \"Only B\", email: \"b@example.com\" }) { lead { id } } }", json!({})).await;
    let ra = app
        .gql(
            &a.admin_key,
            "mutation { refreshGrowthInsights { growthInsights { totalLeads } } }",
            json!({}),
        )
        .await;
    let rb = app
        .gql(
            &b.admin_key,
            "mutation { refreshGrowthInsights { growthInsights { totalLeads } } }",
            json!({}),
        )
        .await;
    let (ta, tb) = (
        ra["data"]["refreshGrowthInsights"]["growthInsights"]["totalLeads"]
            .as_i64()
            .unwrap(),
        rb["data"]["refreshGrowthInsights"]["growthInsights"]["totalLeads"]
            .as_i64()
            .unwrap(),
    );
    assert_eq!(tb, ta + 1, "B's extra lead never counts for A");
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM growth_brain").await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_and_feedback_list_only_the_tenants_rows_newest_first() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    // More rows for A, each batch created at one instant: ties are ordered by id.
    app.insert_for(&a, "INSERT INTO prompt_registry (tenant_id, prompt_name, variant_id, prompt_text, created_at) \
         SELECT $1, (ARRAY['triage', 'reply', 'triage'])[g], 'test-variant-' || g, 'Text ' || g, \
                now() - interval '1 day' \
         FROM generate_series(1, 3) g").await;
    app.insert_for(
        &a,
        "INSERT INTO feedback_tracking (tenant_id, action_type, outcome, created_at) \
         SELECT $1, 'user_action', (ARRAY['positive', 'negative', 'neutral'])[g], \
                now() - interval '1 day' \
         FROM generate_series(1, 3) g",
    )
    .await;
    for (field, table) in [
        ("prompts", "prompt_registry"),
        ("feedback", "feedback_tracking"),
    ] {
        let rows = app.assert_lists_own_rows(field, table, &a, &b).await;
        assert!(rows >= 3, "{table}");
    }
    assert_eq!(
        app.page_ids(&a.admin_key, "prompts", ", name: \"triage\"")
            .await,
        app.ids_by_sql("prompt_registry", &a, Some(("prompt_name", "triage")))
            .await
    );
    let r = app
        .gql(
            &a.admin_key,
            "{ feedback(leadId: \"not-an-id\") { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intent_vocabulary_is_shared_reference_data_by_english_name() {
    let app = TestApp::start().await;
    let a = app.bare_tenant("Vocabulary A").await;
    let b = app.bare_tenant("Vocabulary B").await;
    let mut owner = app.owner().await;
    owner
        .batch_execute(
            "INSERT INTO intent_translations (intent_en, intent_fr, category) VALUES \
             ('zz test shipping', 'zz test livraison', 'logistics'), \
             ('zz test club', 'zz test club', NULL), \
             ('zz test gift', 'zz test cadeau', 'sales')",
        )
        .await
        .unwrap();
    let query = "{ intentTranslations { en fr category } }";
    let r = app.gql(&a.admin_key, query, json!({})).await;
    let list = r["data"]["intentTranslations"].as_array().unwrap().clone();
    let ours: Vec<&Value> = list
        .iter()
        .filter(|t| t["en"].as_str().unwrap().starts_with("zz test"))
        .collect();
    assert_eq!(
        ours,
        [
            &json!({ "en": "zz test club", "fr": "zz test club", "category": null }),
            &json!({ "en": "zz test gift", "fr": "zz test cadeau", "category": "sales" }),
            &json!({ "en": "zz test shipping", "fr": "zz test livraison", "category": "logistics" }),
        ]
    );
    let ens: Vec<&str> = list.iter().map(|t| t["en"].as_str().unwrap()).collect();
    assert!(ens.windows(2).all(|w| w[0] <= w[1]), "{ens:?}");
    // Every tenant reads the same vocabulary.
    let r = app.gql(&b.admin_key, query, json!({})).await;
    assert_eq!(r["data"]["intentTranslations"].as_array().unwrap(), &list);
    // And the server's role cannot change it.
    let denied = {
        use growthgraph::db::TenantDb;
        use scoped_futures::ScopedFutureExt;
        TenantDb::new(app.pool.clone(), a.id)
            .run(|conn, _| {
                async move {
                    diesel::sql_query("DELETE FROM intent_translations")
                        .execute(conn)
                        .await
                        .map_err(growthgraph::error::AppError::from)
                }
                .scope_boxed()
            })
            .await
    };
    assert!(denied.is_err());
    owner
        .batch_execute("DELETE FROM intent_translations WHERE intent_en LIKE 'zz test%'")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_translation_cache_lists_only_the_tenants_entries_newest_first_by_filter() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.bare_tenant("Winery B").await;
    // Five more for A, two of them created at one instant (ties are ordered by id), one
    // for B (which has no demo rows).
    app.insert_for(
        &a,
        "INSERT INTO translation_cache (tenant_id, source_text, source_language, \
           target_language, translated_text, context_type, created_at) \
         SELECT $1, 'Text ' || g, (ARRAY['en', 'fr'])[1 + g % 2], (ARRAY['fr', 'en'])[1 + g % 2], \
                'Texte ' || g, (ARRAY['intent', 'tone', 'intent', 'ui_text', 'lead_summary'])[g], \
                now() - interval '1 hour' * (g / 2) \
         FROM generate_series(1, 5) g",
    )
    .await;
    app.insert_for(
        &b,
        "INSERT INTO translation_cache (tenant_id, source_text, source_language, \
           target_language, translated_text, context_type) \
         VALUES ($1, 'Hello', 'en', 'fr', 'Bonjour', 'ui_text')",
    )
    .await;
    let rows = app
        .assert_lists_own_rows("translations", "translation_cache", &a, &b)
        .await;
    assert!(rows >= 5, "{rows}");
    for (filter, column, value) in [
        ("contextType: INTENT", "context_type", "intent"),
        ("sourceLanguage: FR", "source_language", "fr"),
        ("targetLanguage: FR", "target_language", "fr"),
    ] {
        let listed = app
            .page_ids(
                &a.admin_key,
                "translations",
                &format!(", filter: {{ {filter} }}"),
            )
            .await;
        let expected = app
            .ids_by_sql("translation_cache", &a, Some((column, value)))
            .await;
        assert!(!expected.is_empty(), "{filter}");
        assert_eq!(listed, expected, "{filter}");
    }
    let r = app
        .gql(
            &b.admin_key,
            "{ translations { nodes { sourceText sourceLanguage targetLanguage translatedText \
               contextType qualityScore verified } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["translations"]["nodes"],
        json!([{ "sourceText": "Hello", "sourceLanguage": "EN", "targetLanguage": "FR",
                 "translatedText": "Bonjour", "contextType": "UI_TEXT", "qualityScore": null,
                 "verified": false }]),
        "{r}"
    );
    for bad in [
        "{ translations(filter: { contextType: SUBTITLE }) { nodes { id } } }",
        "{ translations(first: 101) { nodes { id } } }",
        "{ translations(after: \"not a cursor\") { nodes { id } } }",
    ] {
        let r = app.gql(&a.admin_key, bad, json!({})).await;
        assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{bad}: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_translation_dictionary_is_shared_reference_data_by_term() {
    let app = TestApp::start().await;
    let a = app.bare_tenant("Dictionary A").await;
    let b = app.bare_tenant("Dictionary B").await;
    let mut owner = app.owner().await;
    owner
        .batch_execute(
            "INSERT INTO translation_dictionary (source_text, source_language, target_language, \
               translated_text, category, verified, usage_count, confidence) VALUES \
             ('zz wine club', 'en', 'fr', 'zz club de vin', 'loyalty', true, 4, 0.95), \
             ('zz club de vin', 'fr', 'en', 'zz wine club', 'loyalty', true, 1, NULL), \
             ('zz tasting', 'en', 'fr', 'zz dégustation', 'events', false, 0, 0.5)",
        )
        .await
        .unwrap();
    let query = "query($s: Language, $t: Language, $c: String) { translationDictionary(\
                 sourceLanguage: $s, targetLanguage: $t, category: $c) { sourceText \
                 sourceLanguage targetLanguage translatedText category verified usageCount } }";
    let terms = |r: &Value| -> Vec<String> {
        r["data"]["translationDictionary"]
            .as_array()
            .unwrap_or_else(|| panic!("{r}"))
            .iter()
            .map(|t| t["sourceText"].as_str().unwrap().to_owned())
            .filter(|t| t.starts_with("zz "))
            .collect()
    };
    let all = app.gql(&a.admin_key, query, json!({})).await;
    assert_eq!(
        terms(&all),
        ["zz club de vin", "zz tasting", "zz wine club"]
    );
    assert_eq!(
        all["data"]["translationDictionary"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["sourceText"] == "zz wine club"),
        Some(
            &json!({ "sourceText": "zz wine club", "sourceLanguage": "EN",
                      "targetLanguage": "FR", "translatedText": "zz club de vin",
                      "category": "loyalty", "verified": true, "usageCount": 4 })
        )
    );
    // Every tenant reads the same dictionary.
    assert_eq!(app.gql(&b.admin_key, query, json!({})).await, all);
    let english = app.gql(&a.admin_key, query, json!({ "s": "EN" })).await;
    assert_eq!(terms(&english), ["zz tasting", "zz wine club"]);
    let to_english = app.gql(&a.admin_key, query, json!({ "t": "EN" })).await;
    assert_eq!(terms(&to_english), ["zz club de vin"]);
    let loyalty = app
        .gql(&a.admin_key, query, json!({ "c": "loyalty" }))
        .await;
    assert_eq!(terms(&loyalty), ["zz club de vin", "zz wine club"]);
    let r = app.gql(&a.admin_key, query, json!({ "s": "DE" })).await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
}

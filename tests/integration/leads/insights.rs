//! Weekly growth insights against figures computed independently.

use super::*;

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

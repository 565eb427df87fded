//! Translation (seed 001 §6): the shared dictionary, then the tenant's cache (stamped when
//! used, never served past its expiry), then the built-in provider, which says what it is.

use chrono::{Duration, Utc};
use diesel_async::SimpleAsyncConnection;
use growthgraph::db::TenantDb;
use growthgraph::scheduler;
use serde_json::{json, Value};

use crate::common::{count, TestApp, TestTenant};

const TRANSLATE: &str = "mutation($i: TranslateInput!) { translate(input: $i) { translation { translatedText provider quality } userErrors { code field } } }";

async fn translate(
    app: &TestApp,
    t: &TestTenant,
    text: &str,
    from: &str,
    to: &str,
    context: &str,
) -> Value {
    let r = app
        .gql(
            &t.admin_key,
            TRANSLATE,
            json!({ "i": { "text": text, "from": from, "to": to, "context": context } }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["translate"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translations_come_from_the_dictionary_the_cache_then_the_provider() {
    let app = TestApp::start().await;
    let a = app.bare_tenant("Translating A").await;
    let b = app.bare_tenant("Translating B").await;
    let mut owner = app.owner().await;
    owner
        .batch_execute(
            "INSERT INTO translation_dictionary (source_text, source_language, target_language, translated_text, confidence, verified)
               VALUES ('Wine club', 'en', 'fr', 'Club de vin', 0.95, true);
             INSERT INTO intent_translations (intent_en, intent_fr) VALUES ('B2B partnership', 'Partenariat B2B');",
        )
        .await
        .unwrap();
    let cached = |t: &TestTenant| {
        format!(
            "SELECT count(*) AS n FROM translation_cache WHERE tenant_id = '{}'",
            t.id
        )
    };

    // The verified term, exactly: from the dictionary, not cached.
    let p = translate(&app, &a, "Wine club", "EN", "FR", "UI_TEXT").await;
    assert_eq!(
        p["translation"],
        json!({ "translatedText": "Club de vin", "provider": "dictionary", "quality": "0.95" })
    );
    assert_eq!(count(&app, &cached(&a)).await, 0);
    // Another case: the provider finds it, the cache keeps it 90 days; then the cache
    // answers and stamps its use.
    let p = translate(&app, &a, "wine CLUB", "EN", "FR", "UI_TEXT").await;
    assert_eq!(p["translation"]["provider"], "builtin:reference", "{p}");
    assert_eq!(p["translation"]["translatedText"], "Club de vin");
    let kept = format!(
        "SELECT count(*) AS n FROM translation_cache WHERE tenant_id = '{}' AND source_text = 'wine CLUB'
           AND expires_at BETWEEN now() + interval '89 days' AND now() + interval '91 days'",
        a.id
    );
    assert_eq!(count(&app, &kept).await, 1);
    owner
        .batch_execute(&format!(
            "UPDATE translation_cache SET last_used_at = now() - interval '3 days' WHERE tenant_id = '{}'",
            a.id
        ))
        .await
        .unwrap();
    let p = translate(&app, &a, "wine CLUB", "EN", "FR", "UI_TEXT").await;
    assert_eq!(p["translation"]["provider"], "cache", "{p}");
    let stamped = format!(
        "SELECT count(*) AS n FROM translation_cache WHERE tenant_id = '{}' AND last_used_at > now() - interval '1 minute'",
        a.id
    );
    assert_eq!(count(&app, &stamped).await, 1);
    // The intent vocabulary, both ways.
    let p = translate(&app, &a, "partenariat b2b", "FR", "EN", "INTENT").await;
    assert_eq!(p["translation"]["translatedText"], "B2B partnership", "{p}");
    assert_eq!(
        translate(&app, &a, "partenariat b2b", "FR", "EN", "INTENT").await["translation"]
            ["provider"],
        "cache"
    );
    // Nothing known: no text, and no pretence.
    let p = translate(&app, &a, "Une phrase inconnue", "FR", "EN", "LEAD_SUMMARY").await;
    assert_eq!(
        p["translation"],
        json!({ "translatedText": null, "provider": "builtin:reference", "quality": null })
    );
    assert_eq!(count(&app, &cached(&a)).await, 2);
    // Refused, nothing written.
    for (text, from, to, field) in [("", "EN", "FR", "text"), ("Hello", "EN", "EN", "to")] {
        let p = translate(&app, &a, text, from, to, "UI_TEXT").await;
        assert_eq!(p["userErrors"][0]["field"], json!(["input", field]), "{p}");
    }
    assert_eq!(count(&app, &cached(&a)).await, 2);

    // Another tenant has its own cache.
    let p = translate(&app, &b, "wine CLUB", "EN", "FR", "UI_TEXT").await;
    assert_eq!(p["translation"]["provider"], "builtin:reference", "{p}");
    assert_eq!(count(&app, &cached(&b)).await, 1);

    // Past its expiry an entry is not served (the provider answers and the entry is made
    // again), and the daily retention removes what expired.
    owner
        .batch_execute(&format!(
            "UPDATE translation_cache SET expires_at = now() - interval '1 second' WHERE tenant_id = '{}'",
            a.id
        ))
        .await
        .unwrap();
    let p = translate(&app, &a, "wine CLUB", "EN", "FR", "UI_TEXT").await;
    assert_eq!(p["translation"]["provider"], "builtin:reference", "{p}");
    assert_eq!(count(&app, &kept).await, 1);
    let ran = scheduler::tick(
        &TenantDb::new(app.pool.clone(), a.id),
        Utc::now() + Duration::seconds(1),
    )
    .await
    .unwrap();
    let retention = ran
        .iter()
        .find(|(task, _)| *task == "retention")
        .map(|(_, r)| r.clone());
    assert_eq!(retention.unwrap()["translations"], 1, "{ran:?}");
    assert_eq!(count(&app, &cached(&a)).await, 1);

    // Analysts read translations; they do not make them.
    let analyst = app.key(&a, growthgraph::auth::Role::Analyst).await;
    let r = app
        .gql(
            &analyst,
            TRANSLATE,
            json!({ "i": { "text": "x", "from": "EN", "to": "FR" } }),
        )
        .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN", "{r}");
}

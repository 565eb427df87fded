//! Prompts, feedback, the intent vocabulary and the translations: the tenant's rows, or shared reference data.

use super::*;

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

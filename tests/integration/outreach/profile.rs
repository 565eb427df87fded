use super::*;

const REPLACE: &str = "mutation($c: [ProfileChunkInput!]!) { replaceProfileEmbeddings(input: { chunks: $c }) { chunks { text model } userErrors { code field message } } }";
const SET: &str = "mutation($p: ID!, $e: [Float!]) { setProspectEmbedding(input: { prospectId: $p, embedding: $e }) { candidate { profileSimilarity } userErrors { code field } } }";
const SIMILAR: &str =
    "query($n: Int!) { similarProspects(first: $n) { businessName profileSimilarity } }";

/// A 1 536-number vector with `parts` (index, value) set, zeros elsewhere.
fn vector(parts: &[(usize, f64)]) -> Value {
    let mut v = vec![0.0; 1536];
    for (i, x) in parts {
        v[*i] = *x;
    }
    json!(v)
}

async fn similar(app: &TestApp, key: &str, n: i64) -> Vec<(String, f64)> {
    let r = app.gql(key, SIMILAR, json!({ "n": n })).await;
    r["data"]["similarProspects"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|c| {
            (
                c["businessName"].as_str().unwrap().to_owned(),
                c["profileSimilarity"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prospects_are_ranked_by_their_similarity_to_the_profile() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Profiled").await;
    let other = app.bare_tenant("Other").await;
    let p = import(
        &app,
        &t.admin_key,
        json!([{ "businessName": "Close", "website": "close.example" },
               { "businessName": "Halfway", "website": "halfway.example" },
               { "businessName": "Opposite", "website": "opposite.example" }]),
    )
    .await;
    let ids: Vec<String> = p["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    // Without a profile an embedding has no similarity yet.
    let r = app
        .gql(
            &t.admin_key,
            SET,
            json!({ "p": ids[0], "e": vector(&[(0, 1.0), (2, 0.1)]) }),
        )
        .await;
    assert_eq!(
        r["data"]["setProspectEmbedding"]["candidate"]["profileSimilarity"],
        json!(null),
        "{r}"
    );
    assert!(similar(&app, &t.admin_key, 10).await.is_empty());

    // Refused profiles replace nothing.
    let chunks = format!(
        "SELECT count(*) AS n FROM avenir_profile_embeddings WHERE tenant_id = '{}'",
        t.id
    );
    for (chunk, field) in [
        (
            json!({ "text": "Too short", "embedding": vec![0.5; 1535] }),
            "embedding",
        ),
        (
            json!({ "text": "Zeros", "embedding": vector(&[]) }),
            "embedding",
        ),
        (
            json!({ "text": " ", "embedding": vector(&[(0, 1.0)]) }),
            "text",
        ),
    ] {
        let r = app
            .gql(&t.admin_key, REPLACE, json!({ "c": [chunk] }))
            .await;
        let e = &r["data"]["replaceProfileEmbeddings"]["userErrors"][0];
        assert_eq!(
            (&e["code"], &e["field"]),
            (&json!("INVALID"), &json!(["input", "chunks", "0", field])),
            "{r}"
        );
    }
    assert_eq!(count(&app, &chunks).await, 0);

    // Two chunks; the similarity is the highest cosine over them, computed in SQL.
    let r = app
        .gql(&t.admin_key, REPLACE, json!({ "c": [
            { "text": "We automate replies to enquiries", "embedding": vector(&[(0, 1.0)]) },
            { "text": "Bilingual lead scoring", "embedding": vector(&[(1, 2.0)]), "model": "text-embedding-3-small" }] }))
        .await;
    assert_eq!(
        r["data"]["replaceProfileEmbeddings"]["chunks"],
        json!([{ "text": "We automate replies to enquiries", "model": "text-embedding-ada-002" },
               { "text": "Bilingual lead scoring", "model": "text-embedding-3-small" }]),
        "{r}"
    );
    for (id, parts) in [
        (&ids[1], vec![(1, 0.5), (2, 0.5)]),
        (&ids[2], vec![(0, -1.0)]),
    ] {
        let r = app
            .gql(&t.admin_key, SET, json!({ "p": id, "e": vector(&parts) }))
            .await;
        assert_eq!(
            r["data"]["setProspectEmbedding"]["userErrors"],
            json!([]),
            "{r}"
        );
    }
    let ranked = similar(&app, &t.admin_key, 10).await;
    let names: Vec<&str> = ranked.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Close", "Halfway", "Opposite"]);
    // 1 / √1.01, 1 / √2, and 0 (orthogonal to one chunk, opposite the other).
    for ((_, got), want) in ranked
        .iter()
        .zip([1.0 / 1.01f64.sqrt(), 1.0 / 2f64.sqrt(), 0.0])
    {
        assert!((got - want).abs() < 1e-6, "{ranked:?}");
    }
    assert_eq!(similar(&app, &t.admin_key, 2).await.len(), 2);
    let r = app.gql(&t.admin_key, SIMILAR, json!({ "n": 0 })).await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{r}"
    );
    let r = app
        .gql(&t.admin_key, SET, json!({ "p": ids[0], "e": vec![1.0; 3] }))
        .await;
    assert_eq!(
        r["data"]["setProspectEmbedding"]["userErrors"][0]["field"],
        json!(["input", "embedding"])
    );

    // Racing replacements leave one whole profile, and the similarities its own.
    let racing = (0..4).map(|i| {
        let chunk = json!([{ "text": format!("Profile {i}"), "embedding": vector(&[(i, 1.0)]) }]);
        let (app, key) = (&app, &t.admin_key);
        async move { app.gql(key, REPLACE, json!({ "c": chunk })).await }
    });
    futures_util::future::join_all(racing).await;
    assert_eq!(count(&app, &chunks).await, 1);
    let r = app
        .gql(&t.admin_key, "{ profileEmbeddings { text } }", json!({}))
        .await;
    let kept: usize = r["data"]["profileEmbeddings"][0]["text"].as_str().unwrap()[8..]
        .parse()
        .unwrap();
    let close = similar(&app, &t.admin_key, 10)
        .await
        .into_iter()
        .find(|(n, _)| n == "Close")
        .unwrap()
        .1;
    let want = [1.0 / 1.01f64.sqrt(), 0.0, 0.1 / 1.01f64.sqrt(), 0.0][kept];
    assert!((close - want).abs() < 1e-6, "profile {kept}: {close}");

    // Another tenant sees none of it and cannot touch it.
    assert!(similar(&app, &other.admin_key, 10).await.is_empty());
    let r = app
        .gql(
            &other.admin_key,
            "{ profileEmbeddings { text } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["profileEmbeddings"], json!([]));
    let r = app
        .gql(
            &other.admin_key,
            SET,
            json!({ "p": ids[0], "e": vector(&[(0, 1.0)]) }),
        )
        .await;
    assert_eq!(
        user_error_code(&r, "setProspectEmbedding"),
        "NOT_FOUND",
        "{r}"
    );

    // An empty profile: no similarity left.
    let r = app.gql(&t.admin_key, REPLACE, json!({ "c": [] })).await;
    assert_eq!(
        r["data"]["replaceProfileEmbeddings"]["chunks"],
        json!([]),
        "{r}"
    );
    assert!(similar(&app, &t.admin_key, 10).await.is_empty());
}

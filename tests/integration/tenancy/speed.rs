//! The speed mechanisms `--speed-off` switches off change no answer: servers on one
//! database, one with every mechanism, one with none and one with only the pipelined
//! `BEGIN` off, answer the same requests alike, first with keys and documents new to them,
//! then with both known.

use super::*;
use crate::common::without_budget;
use growthgraph::config::ServeArgs;
use growthgraph::speed::{Mechanism, Speed};

const CUSTOMER: &str = "query Customer($id: ID!) { customer(id: $id) {
    id email name ltv pointsBalance currentEnrollment { status stage { name } }
    activities(first: 3) { nodes { type occurredAt } pageInfo { hasNextPage } }
    orders(first: 2) { nodes { orderTotal } } leads { name } } }";
const PAGE: &str = "{ customers(first: 5, orderBy: { field: NAME, direction: ASC }) {
    nodes { name currentEnrollment { stage { name } } } pageInfo { hasNextPage endCursor } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_speed_mechanisms_off_changes_no_answer() {
    let fast = TestApp::start().await;
    let a = fast.tenant("Winery A").await;
    let b = fast.tenant("Winery B").await;
    let without = |off: Vec<Mechanism>| ServeArgs {
        speed: Speed::without(&off),
        ..ServeArgs::default()
    };
    let plain = fast
        .second_instance_with(without(vec![
            Mechanism::KnownKeys,
            Mechanism::PipelinedBegin,
            Mechanism::ValidationSkip,
            Mechanism::PageRelations,
            Mechanism::IdenticalQueries,
        ]))
        .await;
    let unpipelined = fast
        .second_instance_with(without(vec![Mechanism::PipelinedBegin]))
        .await;
    let created = fast
        .gql(
            &a.admin_key,
            "mutation { createApiKey(input: { name: \"dashboard\", role: ANALYST }) { apiKey { id } secret } }",
            json!({}),
        )
        .await;
    let analyst = created["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let analyst_id = created["data"]["createApiKey"]["apiKey"]["id"].clone();
    let list = fast
        .gql(
            &a.admin_key,
            "{ customers(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
    let customer = list["data"]["customers"]["nodes"][0]["id"].clone();
    assert!(customer.is_string(), "{list}");

    let requests: Vec<(Option<&str>, Value)> = vec![
        (
            Some(&analyst),
            json!({ "query": CUSTOMER, "variables": { "id": customer } }),
        ),
        (Some(&a.admin_key), json!({ "query": PAGE })),
        // A variable of the wrong type, and another tenant's customer.
        (
            Some(&analyst),
            json!({ "query": CUSTOMER, "variables": { "id": 5 } }),
        ),
        (
            Some(&b.admin_key),
            json!({ "query": CUSTOMER, "variables": { "id": customer } }),
        ),
        (Some("gg_not_a_key"), json!({ "query": PAGE })),
        (None, json!({ "query": PAGE })),
    ];
    for round in ["new", "known"] {
        for (key, body) in &requests {
            let (status, answer) = fast.post(*key, body.clone()).await;
            for other in [&plain, &unpipelined] {
                let (other_status, other_answer) = other.post(*key, body.clone()).await;
                assert_eq!(status, other_status, "{round}: {body}");
                assert_eq!(
                    without_budget(answer.clone()),
                    without_budget(other_answer),
                    "{round}: {body}"
                );
            }
            if key.is_some_and(|k| k != "gg_not_a_key") && body["variables"]["id"].is_string() {
                assert!(answer["errors"].is_null(), "{round}: {answer}");
            }
        }
    }
    let skipped = "growthgraph_graphql_validation_skipped_total";
    assert!(
        fast.metric(skipped).await > 0,
        "the fast server skipped validations"
    );
    assert_eq!(plain.metric(skipped).await, 0, "the plain one never does");

    // A revoked key is refused by both, the one that knew it included.
    let revoked = fast
        .gql(
            &a.admin_key,
            "mutation($id: ID!) { revokeApiKey(input: { id: $id }) { userErrors { code } } }",
            json!({ "id": analyst_id }),
        )
        .await;
    assert_eq!(
        revoked["data"]["revokeApiKey"]["userErrors"],
        json!([]),
        "{revoked}"
    );
    let body = json!({ "query": PAGE });
    for app in [&fast, &plain, &unpipelined] {
        let (status, answer) = app.post(Some(&analyst), body.clone()).await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(error_code(&answer), Some("UNAUTHENTICATED"), "{answer}");
    }
}

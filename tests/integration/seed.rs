//! `seed --scale`: the bulk load writes rows consistent with every rule the API keeps
//! (ledger, counters, enrollments), only for its tenant, and a rerun adds more.

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::common::TestApp;

#[derive(QueryableByName, Debug, PartialEq)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    customers: i64,
    #[diesel(sql_type = BigInt)]
    distinct_external: i64,
    #[diesel(sql_type = BigInt)]
    activities: i64,
    #[diesel(sql_type = BigInt)]
    orders: i64,
    #[diesel(sql_type = BigInt)]
    enrollments: i64,
    #[diesel(sql_type = BigInt)]
    ledger: i64,
    #[diesel(sql_type = BigInt)]
    recipients: i64,
    #[diesel(sql_type = BigInt)]
    leads: i64,
}

async fn counts(app: &TestApp, tenant: uuid::Uuid) -> Counts {
    let t = format!("'{tenant}'");
    diesel::sql_query(format!(
        "SELECT (SELECT count(*) FROM customers WHERE tenant_id = {t}) AS customers,
                (SELECT count(DISTINCT external_id) FROM customers WHERE tenant_id = {t}) AS distinct_external,
                (SELECT count(*) FROM customer_activities WHERE tenant_id = {t}) AS activities,
                (SELECT count(*) FROM orders WHERE tenant_id = {t}) AS orders,
                (SELECT count(*) FROM club_enrollments WHERE tenant_id = {t}) AS enrollments,
                (SELECT count(*) FROM point_transactions WHERE tenant_id = {t}) AS ledger,
                (SELECT count(*) FROM campaign_recipients WHERE tenant_id = {t}) AS recipients,
                (SELECT count(*) FROM lead_memory WHERE tenant_id = {t}) AS leads"
    ))
    .get_result(&mut app.owner().await)
    .await
    .unwrap()
}

#[tokio::test]
async fn scale_seed_loads_consistent_rows_for_its_tenant_and_a_rerun_adds_more() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("scale").await;
    let other = app.bare_tenant("bystander").await;
    growthgraph::seed::scale::seed_scale(&app.database_url, t.id, 1200)
        .await
        .unwrap();
    growthgraph::seed::scale::seed_scale(&app.database_url, t.id, 300)
        .await
        .unwrap();

    // Per customer n: 10 activities, 3 orders; n % 3 = 0 enrolled with two ledger
    // entries; n % 2 = 0 a recipient; n % 10 = 0 a lead. n runs 1..=1500 across both runs.
    assert_eq!(
        counts(&app, t.id).await,
        Counts {
            customers: 1500,
            distinct_external: 1500,
            activities: 15_000,
            orders: 4500,
            enrollments: 500,
            ledger: 1000,
            recipients: 750,
            leads: 150,
        }
    );
    let untouched = counts(&app, other.id).await;
    assert_eq!(
        untouched.customers + untouched.activities + untouched.leads,
        0
    );

    crate::loyalty::assert_invariants(&app).await;
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let campaign: Id = diesel::sql_query(format!(
        "SELECT id::text AS id FROM campaigns WHERE tenant_id = '{}' AND name = 'Scale campaign'",
        t.id
    ))
    .get_result(&mut app.owner().await)
    .await
    .unwrap();
    crate::campaigns::assert_metrics_exact(&app, &t, &campaign.id).await;

    // The rows read back through the API as a 360.
    let r = app
        .gql(
            &t.admin_key,
            "{ customer(email: \"customer1200@scale.example\") { externalId pointsBalance isClubMember
                currentEnrollment { status stage { name } }
                activities(first: 20) { nodes { type } } orders(first: 5) { nodes { orderTotal } } } }",
            json!({}),
        )
        .await;
    let c = &r["data"]["customer"];
    assert_eq!(c["externalId"], "scale-1200", "{r}");
    assert_eq!(c["pointsBalance"], 150);
    assert_eq!(c["isClubMember"], true);
    assert_eq!(c["currentEnrollment"]["status"], "ACTIVE");
    assert_eq!(c["currentEnrollment"]["stage"]["name"], "Bronze");
    assert_eq!(c["activities"]["nodes"].as_array().unwrap().len(), 10);
    assert_eq!(c["orders"]["nodes"].as_array().unwrap().len(), 3);
}

//! Time series: calendar buckets of a time zone across daylight-saving changes, empty buckets filled.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_fill_empty_buckets_and_follow_paris_across_daylight_saving() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Series").await;
    // Orders around the spring change (29 March 2026, 02:00 → 03:00 in Paris) and the
    // autumn one (25 October, 03:00 → 02:00); nothing on 30 March.
    app.insert_for(
        &t,
        "WITH c AS (INSERT INTO customers (tenant_id, email) VALUES ($1, 'series@example.com') RETURNING id, tenant_id)
         INSERT INTO orders (tenant_id, customer_id, order_total, status, ordered_at)
         SELECT c.tenant_id, c.id, o.total, o.status, o.at::timestamptz FROM c, (VALUES
            (10, 'paid', '2026-03-27T23:30:00Z'), -- 28 March, 00:30 in Paris
            (20, 'paid', '2026-03-28T22:59:00Z'), -- 28 March, 23:59
            (30, 'fulfilled', '2026-03-28T23:00:00Z'), -- 29 March, 00:00
            (40, 'paid', '2026-03-29T21:59:00Z'), -- 29 March, 23:59 (summer time)
            (50, 'paid', '2026-03-31T08:00:00Z'), -- 31 March
            (60, 'paid', '2026-10-25T00:30:00Z'), -- 02:30 summer time
            (70, 'fulfilled', '2026-10-25T01:30:00Z'), -- 02:30 winter time
            (80, 'paid', '2026-10-25T01:45:00Z')
         ) AS o(total, status, at)",
    )
    .await;
    let series = |interval: &str, from: &str, to: &str, by: &str| {
        let app = &app;
        let key = t.admin_key.clone();
        let query = format!(
            "{{ ordersAggregate {{ series(interval: {interval}, from: \"{from}\", to: \"{to}\", timeZone: \"Europe/Paris\"{by}) {{ start key {{ status }} count sum {{ orderTotal }} max {{ orderTotal }} }} }} }}"
        );
        async move {
            let r = app.gql(&key, &query, json!({})).await;
            assert!(r["errors"].is_null(), "{r}");
            r["data"]["ordersAggregate"]["series"].clone()
        }
    };
    let days = series("DAY", "2026-03-27T23:00:00Z", "2026-03-31T22:00:00Z", "").await;
    let points: Vec<(String, i64, String)> = days
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["start"].as_str().unwrap().to_string(),
                b["count"].as_i64().unwrap(),
                normal(b["sum"]["orderTotal"].as_str().unwrap()),
            )
        })
        .collect();
    // Paris midnights: 23:00 UTC in winter, 22:00 UTC in summer; 29 March lasts 23 hours.
    assert_eq!(
        points,
        [
            ("2026-03-27T23:00:00+00:00".to_string(), 2, "30".to_string()),
            ("2026-03-28T23:00:00+00:00".to_string(), 2, "70".to_string()),
            ("2026-03-29T22:00:00+00:00".to_string(), 0, "0".to_string()),
            ("2026-03-30T22:00:00+00:00".to_string(), 1, "50".to_string()),
        ]
    );
    assert!(
        days[2]["max"]["orderTotal"].is_null(),
        "no maximum of nothing"
    );
    // The same buckets as PostgreSQL's own calendar in Paris.
    let recounted = recount(
        &app,
        &t,
        "SELECT to_char(date_trunc('day', ordered_at, 'Europe/Paris') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS+00:00') AS k,
                count(*) AS n, sum(order_total)::text AS v
         FROM orders WHERE tenant_id = $1 AND ordered_at < '2026-04-01' GROUP BY 1",
    )
    .await;
    let non_empty: Vec<_> = points.iter().filter(|p| p.1 > 0).cloned().collect();
    assert_eq!(non_empty, recounted);

    // The autumn night in hours: the repeated 02:00 is two buckets; by status, every
    // bucket has a point for each status present, zero when empty.
    let hours = series(
        "HOUR",
        "2026-10-24T23:00:00Z",
        "2026-10-25T03:00:00Z",
        ", by: [STATUS]",
    )
    .await;
    let points: Vec<(String, String, i64)> = hours
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["start"].as_str().unwrap()[11..16].to_string(),
                b["key"]["status"].as_str().unwrap().to_string(),
                b["count"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, String, i64)> = [
        ("23:00", 0, 0),
        ("00:00", 1, 0),
        ("01:00", 1, 1),
        ("02:00", 0, 0),
    ]
    .iter()
    .flat_map(|(at, completed, shipped)| {
        [
            (at.to_string(), "fulfilled".to_string(), *shipped),
            (at.to_string(), "paid".to_string(), *completed),
        ]
    })
    .collect();
    assert_eq!(points, expected);

    // Weeks start on Monday (in Paris), months on the first.
    let weeks = series("WEEK", "2026-03-25T00:00:00Z", "2026-04-01T00:00:00Z", "").await;
    let starts: Vec<&str> = weeks
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        ["2026-03-22T23:00:00+00:00", "2026-03-29T22:00:00+00:00"]
    );
    let weekly: Vec<i64> = weeks
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .collect();
    assert_eq!(weekly, [4, 1]);
    let months = series("MONTH", "2026-03-01T00:00:00Z", "2026-12-01T00:00:00Z", "").await;
    assert_eq!(months.as_array().unwrap().len(), 10, "March to December");
    assert_eq!(months[0]["start"], json!("2026-02-28T23:00:00+00:00"));
    assert_eq!(months[7]["count"], json!(3), "October");
}

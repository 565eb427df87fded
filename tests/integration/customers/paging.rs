//! Pages: a constant number of statements, one transaction per read-only request, keyset pages forward and backward under every ordering, nested pages after any cursor, filters.

use super::*;

const PAGE_QUERY: &str = "query($first: Int!) { customers(first: $first, orderBy: { field: CREATED_AT, direction: DESC }) { nodes { id pointsBalance
    currentEnrollment { status stage { name discountPercentage } }
    activities(first: 5) { nodes { id type } } orders(first: 3) { nodes { id orderTotal } } } } }";

async fn statements_for(app: &TestApp, key: &str, first: i64) -> (u64, Value) {
    let before = app.statements.data_statements();
    let response = app.gql(key, PAGE_QUERY, json!({ "first": first })).await;
    (app.statements.data_statements() - before, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_runs_the_same_few_statements_whatever_its_size() {
    // A debug build on a busy 2-core machine can take longer than the default 1 ms to
    // resolve 50 nodes; a wider window keeps one batch per relation deterministic here.
    let app = TestApp::start_with(ServeArgs {
        batch_window_us: 50_000,
        ..ServeArgs::default()
    })
    .await;
    let a = app.tenant("Winery A").await;
    add_customers(&app, &a).await;
    // Warm-up: the key's first use also records last_used_at (off the request path).
    app.gql(&a.admin_key, "{ viewer { tenant { id } } }", json!({}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let (small, small_response) = statements_for(&app, &a.admin_key, 5).await;
    let (large, large_response) = statements_for(&app, &a.admin_key, 50).await;
    assert!(small_response["errors"].is_null(), "{small_response}");
    let nodes = large_response["data"]["customers"]["nodes"]
        .as_array()
        .unwrap();
    assert_eq!(nodes.len(), 50);
    assert!(nodes
        .iter()
        .any(|n| n["activities"]["nodes"].as_array().unwrap().len() == 5));
    assert!(nodes
        .iter()
        .all(|n| n["orders"]["nodes"].as_array().unwrap().len() <= 3));
    assert!(nodes
        .iter()
        .any(|n| n["currentEnrollment"]["stage"]["name"].is_string()));
    assert_eq!(small, large, "statement count grew with page size");
    assert!(large <= 6, "{large} statements for one page");
}

/// Every list and lookup of a read-only request joins its one snapshot: one `BEGIN` (with
/// the tenant) and one `COMMIT`, however many root fields and loaders it has. A read that
/// went through the write path would end the snapshot and open its own transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_request_runs_in_one_transaction() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    // Warm-up: the key's first use also records last_used_at (off the request path).
    app.gql(&a.admin_key, "{ viewer { tenant { id } } }", json!({}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let control = || {
        std::sync::atomic::AtomicU64::load(
            &app.statements.control,
            std::sync::atomic::Ordering::Relaxed,
        )
    };
    let before = control();
    let response = app
        .gql(
            &a.admin_key,
            "{ viewer { tenant { slug } apiKey { name } } apiKeys { nodes { id } }
               customers(first: 5) { nodes { id orders(first: 1) { nodes { id } } } }
               enrollments(first: 5) { nodes { id } } rewards(first: 5) { nodes { id } }
               redemptions(first: 5) { nodes { id } } leads(first: 5) { nodes { id } }
               campaigns(first: 5) { nodes { id } } publishedTestimonials(first: 5) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert!(response["errors"].is_null(), "{response}");
    assert!(!response["data"]["customers"]["nodes"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(control() - before, 2, "one BEGIN and one COMMIT");
}

/// Walks the whole connection backward from the end, `size` at a time; returns the ids
/// in forward order.
async fn walk_back(app: &TestApp, key: &str, size: i64, order_by: Value) -> Vec<Uuid> {
    let mut pages: Vec<Vec<Uuid>> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let r = app
            .gql(
                key,
                "query($last: Int, $before: String, $orderBy: CustomerOrderBy) {
                   customers(last: $last, before: $before, orderBy: $orderBy) {
                     nodes { id } pageInfo { hasPreviousPage startCursor } } }",
                json!({ "last": size, "before": before, "orderBy": order_by }),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        let connection = &r["data"]["customers"];
        pages.push(
            connection["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().parse().unwrap())
                .collect(),
        );
        if !connection["pageInfo"]["hasPreviousPage"].as_bool().unwrap() {
            break;
        }
        before = connection["pageInfo"]["startCursor"]
            .as_str()
            .map(str::to_owned);
        assert!(pages.len() < 10_000, "pagination does not terminate");
    }
    pages.into_iter().rev().flatten().collect()
}

fn expected_order(mut rows: Vec<Row>, field: &str, descending: bool) -> Vec<Uuid> {
    use std::cmp::Ordering;
    // NULL keys last in both directions; ties broken by id in the same direction.
    fn cmp_opt<T: Ord>(a: &Option<T>, b: &Option<T>, descending: bool) -> Ordering {
        match (a, b) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => {
                if descending {
                    y.cmp(x)
                } else {
                    x.cmp(y)
                }
            }
        }
    }
    rows.sort_by(|a, b| {
        let key = match field {
            "LTV" => cmp_opt(&Some(a.ltv.clone()), &Some(b.ltv.clone()), descending),
            "LAST_ACTIVITY" => cmp_opt(&a.last_activity_at, &b.last_activity_at, descending),
            "CREATED_AT" => cmp_opt(&Some(a.created_at), &Some(b.created_at), descending),
            "NAME" => cmp_opt(&a.name, &b.name, descending),
            _ => unreachable!(),
        };
        let tie = if descending {
            b.id.cmp(&a.id)
        } else {
            a.id.cmp(&b.id)
        };
        key.then(tie)
    });
    rows.into_iter().map(|r| r.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_forward_and_backward_visits_every_row_once_in_order_under_each_ordering() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    add_customers(&app, &a).await;
    let rows = all_rows(&app, a.id).await;
    for field in ["LTV", "LAST_ACTIVITY", "CREATED_AT", "NAME"] {
        for (direction, descending) in [("ASC", false), ("DESC", true)] {
            let ids = walk(
                &app,
                &a.admin_key,
                7,
                json!({ "field": field, "direction": direction }),
                json!(null),
            )
            .await;
            let unique: HashSet<_> = ids.iter().collect();
            assert_eq!(
                unique.len(),
                ids.len(),
                "{field} {direction}: a row came twice"
            );
            assert_eq!(
                ids,
                expected_order(rows.clone(), field, descending),
                "{field} {direction}"
            );
            let back = walk_back(
                &app,
                &a.admin_key,
                7,
                json!({ "field": field, "direction": direction }),
            )
            .await;
            assert_eq!(
                back,
                expected_order(rows.clone(), field, descending),
                "{field} {direction} backward"
            );
        }
    }
}

#[derive(QueryableByName)]
struct ActivityKey {
    #[diesel(sql_type = SqlUuid)]
    customer_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

/// A list's nested connections load in one statement per relation for all its parents:
/// each parent still gets its own newest children, ties broken by id, and the same
/// cursor applied to every parent starts each one's page after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lists_nested_pages_hold_each_parents_newest_children_after_any_cursor() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    add_customers(&app, &a).await;
    let mut owner = app.owner().await;
    // Three more activities per bulk customer at one instant: ties on the sort key.
    owner
        .batch_execute(&format!(
            "INSERT INTO customer_activities (tenant_id, customer_id, activity_type, created_at)
             SELECT tenant_id, id, 'visit', timestamptz '2026-01-01 12:00'
             FROM customers, generate_series(1, 3) WHERE tenant_id = '{}' AND external_id LIKE 'bulk-%'",
            a.id
        ))
        .await
        .unwrap();
    let all: Vec<ActivityKey> = diesel::sql_query(
        "SELECT customer_id, id, created_at FROM customer_activities WHERE tenant_id = $1",
    )
    .bind::<SqlUuid, _>(a.id)
    .load(&mut owner)
    .await
    .unwrap();
    // Newest first, ties by id, computed here.
    let expected = |customer: Uuid, after: Option<(DateTime<Utc>, Uuid)>, n: usize| {
        let mut rows: Vec<_> = all
            .iter()
            .filter(|r| r.customer_id == customer)
            .map(|r| (r.created_at, r.id))
            .filter(|key| after.is_none_or(|after| *key < after))
            .collect();
        rows.sort_by(|x, y| y.cmp(x));
        rows.into_iter()
            .take(n)
            .map(|(_, id)| id)
            .collect::<Vec<_>>()
    };
    let key_of = |id: Uuid| {
        let row = all.iter().find(|r| r.id == id).unwrap();
        (row.created_at, row.id)
    };

    // A cursor on the first tied activity of one customer, and one on a recent activity.
    let first: Value = first_customer(&app, &a).await;
    let r = app
        .gql(
            &a.admin_key,
            "query($id: ID) { customer(id: $id) { activities(first: 10) { edges { cursor node { id } } } } }",
            json!({ "id": first }),
        )
        .await;
    let edges = r["data"]["customer"]["activities"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .clone();
    assert_eq!(edges.len(), 10, "{r}");
    let cursor_at = |i: usize| {
        let id: Uuid = edges[i]["node"]["id"].as_str().unwrap().parse().unwrap();
        (edges[i]["cursor"].clone(), Some(key_of(id)))
    };

    let mut checked_ties = 0;
    for (cursor, after) in [
        (json!(null), None),
        cursor_at(2),
        cursor_at(7),
        cursor_at(8),
    ] {
        let r = app
            .gql(
                &a.admin_key,
                "query($after: String) { customers(first: 40, orderBy: { field: CREATED_AT, direction: DESC }) {
                   nodes { id activities(first: 4, after: $after) { nodes { id } pageInfo { hasNextPage } } } } }",
                json!({ "after": cursor }),
            )
            .await;
        let nodes = r["data"]["customers"]["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("{r}"));
        assert_eq!(nodes.len(), 40, "{r}");
        for node in nodes {
            let customer: Uuid = node["id"].as_str().unwrap().parse().unwrap();
            let page: Vec<Uuid> = node["activities"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().parse().unwrap())
                .collect();
            let wanted = expected(customer, after, 5);
            assert_eq!(
                page,
                wanted[..wanted.len().min(4)],
                "customer {customer} after {after:?}"
            );
            assert_eq!(
                node["activities"]["pageInfo"]["hasNextPage"],
                wanted.len() > 4,
                "customer {customer} after {after:?}"
            );
            let tied = |id: &Uuid| key_of(*id).0 == key_of(page[0]).0;
            if page.len() > 1 && page[1..].iter().all(tied) {
                checked_ties += 1;
            }
        }
    }
    assert!(checked_ties > 0, "no page held tied children");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_matches_an_independent_expectation() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    add_customers(&app, &a).await;
    let rows = all_rows(&app, a.id).await;
    let from: DateTime<Utc> = "2026-01-03T00:00:00Z".parse().unwrap();
    let to: DateTime<Utc> = "2026-01-07T00:00:00Z".parse().unwrap();
    let ltv_min: BigDecimal = "100.50".parse().unwrap();
    let ltv_max: BigDecimal = "301.50".parse().unwrap();
    let cases: Vec<(Value, Predicate)> = vec![
        (
            json!({ "segment": "vip" }),
            Box::new(|r: &Row| r.segment.as_deref() == Some("vip")),
        ),
        (
            json!({ "churnRisk": "HIGH" }),
            Box::new(|r: &Row| r.churn_risk.as_deref() == Some("high")),
        ),
        (
            json!({ "isClubMember": true }),
            Box::new(|r: &Row| r.is_club_member),
        ),
        (
            json!({ "isClubMember": false }),
            Box::new(|r: &Row| !r.is_club_member),
        ),
        (
            json!({ "ltvMin": "100.50", "ltvMax": "301.50" }),
            Box::new(move |r: &Row| r.ltv >= ltv_min && r.ltv <= ltv_max),
        ),
        (
            json!({ "lastActivityFrom": from, "lastActivityTo": to }),
            Box::new(move |r: &Row| r.last_activity_at.is_some_and(|t| t >= from && t < to)),
        ),
        (
            json!({ "search": "NAME 3" }),
            Box::new(|r: &Row| {
                r.name
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase().contains("name 3"))
                    || r.email.as_deref().is_some_and(|e| e.contains("name 3"))
            }),
        ),
        (
            json!({ "search": "BULK1" }),
            Box::new(|r: &Row| r.email.as_deref().is_some_and(|e| e.contains("bulk1"))),
        ),
        (
            json!({ "search": "%" }),
            Box::new(|r: &Row| r.email.as_deref().is_some_and(|e| e.contains('%'))),
        ),
        (
            json!({ "segment": "casual", "isClubMember": true }),
            Box::new(|r: &Row| r.segment.as_deref() == Some("casual") && r.is_club_member),
        ),
    ];
    for (filter, predicate) in cases {
        let mut got = walk(&app, &a.admin_key, 100, json!(null), filter.clone()).await;
        let mut expected: Vec<Uuid> = rows.iter().filter(|r| predicate(r)).map(|r| r.id).collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "filter {filter}");
    }
}

/// Every root list that takes `last`/`before`, walked backward one row at a time from its
/// end, visits the rows the forward walk visits, in the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_root_list_pages_backward_through_the_rows_it_pages_forward() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let r = app
        .gql(
            &a.admin_key,
            "{ __schema { queryType { fields { name args { name } } } } }",
            json!({}),
        )
        .await;
    let backward_lists: Vec<String> = r["data"]["__schema"]["queryType"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            let args: Vec<&str> = f["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap())
                .collect();
            args.contains(&"last") && args.contains(&"before")
        })
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(backward_lists.len() >= 20, "{backward_lists:?}");
    let mut crossing_pages = 0;
    for field in &backward_lists {
        let forward = app.page_cursors(&a.admin_key, field, "", false).await;
        let backward = app.page_cursors(&a.admin_key, field, "", true).await;
        assert_eq!(backward, forward, "{field}");
        if forward.len() > 1 {
            crossing_pages += 1;
        }
        // One direction at a time; `last` is held to the same bounds as `first`.
        for (args, path) in [
            ("first: 2, last: 2", "last"),
            ("last: 101", "last"),
            ("last: 2, before: \"not a cursor\"", "before"),
        ] {
            let query = format!("{{ {field}({args}) {{ edges {{ cursor }} }} }}");
            let r = app.gql(&a.admin_key, &query, json!({})).await;
            assert_eq!(
                error_code(&r),
                Some("BAD_USER_INPUT"),
                "{field}({args}): {r}"
            );
            assert_eq!(
                r["errors"][0]["extensions"]["field"],
                json!([path]),
                "{field}({args}): {r}"
            );
        }
    }
    assert!(
        crossing_pages >= 10,
        "{crossing_pages} lists with more than one page"
    );
}

/// Members of a read group asking the same query while one of them runs it share that
/// run: five identical pages cost one page, and each member gets the answer it gets
/// alone. Other variables, or another key (the query names its key), are other questions.
/// A server with `identical-queries` off runs every member's page, with the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_queries_of_a_read_group_run_once() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    add_customers(&app, &a).await;
    let other_key = app.key(&a, Role::Admin).await;
    let off = app
        .second_instance_with(ServeArgs {
            speed: growthgraph::speed::Speed::without(&[
                growthgraph::speed::Mechanism::IdenticalQueries,
            ]),
            ..ServeArgs::default()
        })
        .await;
    let query = "query($first: Int!) { viewer { apiKey { name } }
        customers(first: $first, orderBy: { field: CREATED_AT, direction: DESC }) {
          nodes { id name currentEnrollment { stage { name } } activities(first: 2) { nodes { type } } }
          pageInfo { endCursor } } }";
    let five = json!({ "first": 5 });
    let three = json!({ "first": 3 });
    let mut asked: Vec<(String, Value)> = vec![(a.admin_key.clone(), five.clone()); 5];
    asked.push((a.admin_key.clone(), three.clone()));
    asked.push((a.admin_key.clone(), three.clone()));
    asked.push((other_key.clone(), five.clone()));

    for server in [&app, &off] {
        for key in [&a.admin_key, &other_key] {
            server
                .gql(key, "{ viewer { tenant { id } } }", json!({}))
                .await;
        }
    }
    // (The keys' first uses recorded last_used_at off the request path.)
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut alone = Vec::new();
    let mut statements = 0;
    for (key, variables) in &asked[4..] {
        let before = app.statements.data_statements();
        let r = app.gql(key, query, variables.clone()).await;
        statements = app.statements.data_statements() - before;
        assert!(r["data"]["customers"]["nodes"][0]["id"].is_string(), "{r}");
        alone.push(without_budget(r));
    }
    assert_ne!(alone[0], alone[3], "the query names its key");
    assert_ne!(alone[0], alone[1], "and depends on its variables");
    let expected: Vec<&Value> = [0, 0, 0, 0, 0, 1, 2, 3]
        .iter()
        .map(|i| &alone[*i])
        .collect();

    for (server, runs) in [(&app, 3), (&off, 8)] {
        let shared = server.metric("growthgraph_read_group_shared_total").await;
        let before = server.statements.data_statements();
        let answers = together(server, query, &asked, 7).await;
        assert_eq!(answers.iter().collect::<Vec<_>>(), expected);
        assert_eq!(
            server.statements.data_statements() - before,
            1 + runs * (statements - 1),
            "one message confirming both keys, then {runs} runs of the page's statements"
        );
        assert_eq!(
            server.metric("growthgraph_read_group_shared_total").await - shared,
            8 - runs,
            "members answered by another's run"
        );
    }
}

//! The customer 360: its fields, one statement answering as the loaders do, shared by queries that arrive together, and row types checked against their tables.

use super::*;
use growthgraph::speed::{Mechanism, Speed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_preferences_and_the_360_fields() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let r = app
        .gql(
            &a.admin_key,
            "{ customers(first: 1, filter: { isClubMember: true }) { nodes { id } } }",
            json!({}),
        )
        .await;
    let id = r["data"]["customers"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = app
        .gql(
            &a.admin_key,
            "mutation($id: ID!) { recordCustomerActivity(input: { customerId: $id, type: \"cellar_tour\", description: \"Tour\", data: { guests: 2 } }) { activity { type data } userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        r["data"]["recordCustomerActivity"]["activity"]["type"], "cellar_tour",
        "{r}"
    );
    let r = app
        .gql(
            &a.admin_key,
            "query($id: ID) { customer(id: $id) { activities(first: 10, types: [\"cellar_tour\"]) { nodes { type data } }
               pointsBalance pointsLifetime cumulativeMembershipDays isClubMember enrollments { status }
               currentEnrollment { stage { name } } pointTransactions(first: 2) { nodes { balanceAfter } }
               communications(first: 2) { nodes { channel status } } campaignHistory { nodes { status campaign { name } } }
               communicationPreferences { channel type optedIn } leads { id } } }",
            json!({ "id": id }),
        )
        .await;
    let c = &r["data"]["customer"];
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(c["activities"]["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(c["activities"]["nodes"][0]["data"]["guests"], 2);
    assert!(c["cumulativeMembershipDays"].as_i64().unwrap() > 0);
    assert_eq!(
        c["pointTransactions"]["nodes"][0]["balanceAfter"],
        c["pointsBalance"]
    );
    assert!(c["campaignHistory"]["nodes"][0]["campaign"]["name"].is_string());

    let set = "mutation($id: ID!, $in: Boolean!) { setCommunicationPreferences(input: { customerId: $id,
        preferences: [{ channel: SMS, type: MARKETING, optedIn: $in, reason: \"too many\" }] }) {
        preferences { channel type optedIn unsubscribedAt unsubscribeReason } userErrors { code } } }";
    let r = app
        .gql(&a.admin_key, set, json!({ "id": id, "in": false }))
        .await;
    let sms: Vec<&Value> = r["data"]["setCommunicationPreferences"]["preferences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["channel"] == "SMS" && p["type"] == "MARKETING")
        .collect();
    assert_eq!(sms[0]["optedIn"], false, "{r}");
    assert!(sms[0]["unsubscribedAt"].is_string());
    assert_eq!(sms[0]["unsubscribeReason"], "too many");
    let r = app
        .gql(&a.admin_key, set, json!({ "id": id, "in": true }))
        .await;
    let sms: Vec<&Value> = r["data"]["setCommunicationPreferences"]["preferences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["channel"] == "SMS" && p["type"] == "MARKETING")
        .collect();
    assert_eq!(sms[0]["optedIn"], true);
    assert!(sms[0]["unsubscribedAt"].is_null());

    // By email, case-insensitively.
    let email = app
        .gql(
            &a.admin_key,
            "query($id: ID) { customer(id: $id) { email } }",
            json!({ "id": id }),
        )
        .await["data"]["customer"]["email"]
        .as_str()
        .unwrap()
        .to_uppercase();
    let r = app
        .gql(
            &a.admin_key,
            "query($e: String) { customer(email: $e) { id } }",
            json!({ "e": email }),
        )
        .await;
    assert_eq!(r["data"]["customer"]["id"], id.as_str());
}

/// The full 360 selection, with an alias asking for a second page of one relation (read
/// by its loader, not by the one statement) and stages under every enrollment.
const FULL_360: &str = "id externalId email name phone segment churnRisk ltv totalDeposit totalWithdraw
    lastActivityAt metadata createdAt updatedAt pointsBalance pointsLifetime cumulativeMembershipDays isClubMember
    currentEnrollment { id status enrolledAt expiresAt stage { name discountPercentage } }
    enrollments { id status enrolledAt stage { name } }
    activities(first: 10, types: [\"purchase\", \"visit\", \"email_opened\", \"visit\"]) { nodes { id type description data occurredAt } pageInfo { hasNextPage } }
    recent: activities(first: 2) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } }
    orders(first: 5) { nodes { id orderTotal subtotal lineItems orderedAt } pageInfo { hasNextPage } }
    pointTransactions(first: 5) { nodes { id sequence points balanceAfter transactionType createdAt } }
    redemptions(first: 5) { nodes { id status pointsSpent } }
    communicationPreferences { channel type optedIn unsubscribedAt }
    communications(first: 5) { nodes { id channel status } }
    campaignHistory(first: 5) { nodes { id status sentAt campaign { id name status } } }
    leads { id name }";

/// `customer(id:)` and `customer(email:)` read the whole 360 in one statement; the answer is
/// the one the loaders give for the same selection under `customers` (which reads each
/// relation through its loader), for every customer of the demo data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_360_is_one_statement_and_answers_as_the_loaders_do() {
    // `customers` reads each relation through its loader here (no page relations).
    let app = TestApp::start_with(ServeArgs {
        speed: Speed::without(&[Mechanism::PageRelations]),
        ..ServeArgs::default()
    })
    .await;
    let a = app.tenant("Winery A").await;
    app.tenant("Winery B").await;
    // Beyond the demo rows: club history (an earlier, upgraded enrollment at another
    // stage) and converted leads, one of them deleted, for the newest club member (the
    // list below is newest first, and the demo has more customers than one page).
    app.owner()
        .await
        .batch_execute(&format!(
            "WITH member AS (SELECT e.customer_id, e.program_id, e.stage_id, e.enrolled_at
                             FROM club_enrollments e JOIN customers c ON c.id = e.customer_id
                             WHERE e.tenant_id = '{t}' ORDER BY c.created_at DESC LIMIT 1)
             INSERT INTO club_enrollments (tenant_id, customer_id, program_id, stage_id, status, enrolled_at, expires_at, ended_at, sync_status)
             SELECT '{t}', m.customer_id, m.program_id, s.id, 'upgraded', m.enrolled_at - interval '200 days',
                    m.enrolled_at - interval '20 days', m.enrolled_at - interval '20 days', 'synced'
             FROM member m JOIN club_stages s ON s.program_id = m.program_id AND s.id <> m.stage_id LIMIT 1;
             UPDATE lead_memory SET customer_id = (SELECT e.customer_id FROM club_enrollments e
                                                   JOIN customers c ON c.id = e.customer_id
                                                   WHERE e.tenant_id = '{t}' ORDER BY c.created_at DESC LIMIT 1),
                                    deleted = (name = (SELECT min(name) FROM lead_memory WHERE tenant_id = '{t}'))
             WHERE id IN (SELECT id FROM lead_memory WHERE tenant_id = '{t}' ORDER BY name LIMIT 3);",
            t = a.id
        ))
        .await
        .unwrap();
    // Warm-up: the key's first use also records last_used_at (off the request path).
    app.gql(&a.admin_key, "{ viewer { tenant { id } } }", json!({}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let list = app
        .gql(
            &a.admin_key,
            &format!(
                "{{ customers(first: 20, orderBy: {{ field: CREATED_AT, direction: DESC }}) \
                 {{ nodes {{ {FULL_360} }} }} }}"
            ),
            json!({}),
        )
        .await;
    assert!(list["errors"].is_null(), "{list}");
    let nodes = list["data"]["customers"]["nodes"].as_array().unwrap();
    assert!(nodes.len() >= 3, "{list}");
    // The comparison covers every part: some customer has rows in each.
    for part in [
        "enrollments",
        "leads",
        "communicationPreferences",
        "activities.nodes",
        "recent.edges",
        "orders.nodes",
        "pointTransactions.nodes",
        "redemptions.nodes",
        "communications.nodes",
        "campaignHistory.nodes",
    ] {
        let has_rows = nodes.iter().any(|n| {
            part.split('.')
                .fold(n, |v, key| &v[key])
                .as_array()
                .is_some_and(|rows| !rows.is_empty())
        });
        assert!(has_rows, "no demo customer has {part}");
    }
    assert!(nodes
        .iter()
        .any(|n| n["currentEnrollment"]["stage"]["name"].is_string()));
    assert!(nodes
        .iter()
        .any(|n| n["enrollments"].as_array().unwrap().len() == 2));
    assert!(nodes
        .iter()
        .any(|n| n["leads"].as_array().unwrap().len() == 2));

    for node in nodes {
        let before = app.statements.data_statements();
        let by_id = app
            .gql(
                &a.admin_key,
                &format!("query($id: ID) {{ customer(id: $id) {{ {FULL_360} }} }}"),
                json!({ "id": node["id"] }),
            )
            .await;
        let statements = app.statements.data_statements() - before;
        assert!(by_id["errors"].is_null(), "{by_id}");
        assert_eq!(&by_id["data"]["customer"], node);
        // The API key's lookup, the 360, and the aliased page, which its loader reads.
        assert_eq!(statements, 3, "statements for one customer 360");

        let Some(email) = node["email"].as_str() else {
            continue;
        };
        let by_email = app
            .gql(
                &a.admin_key,
                &format!("query($e: String) {{ customer(email: $e) {{ {FULL_360} }} }}"),
                json!({ "e": email.to_uppercase() }),
            )
            .await;
        assert_eq!(&by_email["data"]["customer"], node, "{by_email}");
    }

    // Without the alias, the whole 360 is one statement (after the API key's lookup).
    let single = FULL_360.replace(
        "recent: activities(first: 2) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } }",
        "",
    );
    let before = app.statements.data_statements();
    let r = app
        .gql(
            &a.admin_key,
            &format!("query($id: ID) {{ customer(id: $id) {{ {single} }} }}"),
            json!({ "id": nodes[0]["id"] }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(app.statements.data_statements() - before, 2);
}

/// Queries of one key that arrive while the pool is busy form a read group: their 360s
/// are one statement (with one key confirmation), and each answers as it does alone, a
/// customer asked for twice included. Another tenant's queries, arriving with them, form
/// their own group and see only their own customers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_360s_of_queries_that_arrive_together_are_one_statement() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let single = FULL_360.replace(
        "recent: activities(first: 2) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } }",
        "",
    );
    let query = format!("query($id: ID) {{ customer(id: $id) {{ {single} }} }}");
    let (a_ids, b_ids) = (
        first_customer_ids(&app, &a.admin_key, 6).await,
        first_customer_ids(&app, &b.admin_key, 6).await,
    );
    assert_eq!((a_ids.len(), b_ids.len()), (6, 6));
    // (The keys' first uses recorded last_used_at off the request path: let that finish.)
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Each alone first (the keys' first uses are behind them): two statements each, the
    // key's confirmation and the 360.
    let mut alone = Vec::new();
    for (key, id) in a_ids
        .iter()
        .map(|id| (&a.admin_key, id))
        .chain([(&b.admin_key, &a_ids[0])])
    {
        let before = app.statements.data_statements();
        let r = app.gql(key, &query, json!({ "id": id })).await;
        assert!(r["errors"].is_null(), "{r}");
        assert_eq!(app.statements.data_statements() - before, 2);
        alone.push(without_budget(r));
    }
    assert!(alone[..6]
        .iter()
        .all(|r| r["data"]["customer"]["id"].is_string()));
    assert!(
        alone[6]["data"]["customer"].is_null(),
        "another tenant's customer"
    );

    // Together: a's six customers (the first twice) and b's first, asked for with a's key
    // and with b's; b also asks for a's first customer.
    let mut held = Vec::new();
    while held.len() < app.pool.status().max_size {
        held.push(app.pool.get().await.unwrap());
    }
    let joins = app.metric("growthgraph_read_group_joins_total").await;
    let before = app.statements.data_statements();
    let mut asked: Vec<(&str, Value)> = a_ids
        .iter()
        .map(|id| (a.admin_key.as_str(), id.clone()))
        .collect();
    asked.push((&a.admin_key, a_ids[0].clone()));
    asked.push((&a.admin_key, b_ids[0].clone()));
    asked.push((&b.admin_key, b_ids[0].clone()));
    asked.push((&b.admin_key, a_ids[0].clone()));
    let answers = futures_util::future::join_all(
        asked
            .iter()
            .map(|(key, id)| app.gql(key, &query, json!({ "id": id }))),
    );
    let release = async {
        // Every request joins its caller's group (a: 8 requests, b: 2) before the pool
        // frees.
        let mut joined = 0;
        for _ in 0..1000 {
            joined = app.metric("growthgraph_read_group_joins_total").await - joins;
            if joined >= 8 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(joined, 8, "requests that joined a group");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(app.statements.data_statements(), before, "the pool is held");
        drop(held);
    };
    let (answers, ()) = tokio::join!(answers, release);
    let answers: Vec<Value> = answers.into_iter().map(without_budget).collect();
    assert_eq!(
        app.statements.data_statements() - before,
        4,
        "per group: the key's confirmation and one 360 for all its members"
    );
    for (answer, expected) in answers[..6].iter().zip(&alone) {
        assert_eq!(answer, expected);
    }
    assert_eq!(answers[6], alone[0], "the customer asked for twice");
    assert!(
        answers[7]["data"]["customer"].is_null(),
        "b's customer for a's key: {}",
        answers[7]
    );
    assert_eq!(answers[8]["data"]["customer"]["id"], b_ids[0]);
    assert_eq!(answers[9], alone[6], "a's customer for b's key");
}

/// A `customers` page reads every relation its nodes ask for in the page's own statement,
/// and answers as the loaders do: random selections of the 360's parts, under `nodes` or
/// `edges { node }`, asked of a server with page relations and of one without (same
/// database), get the same answers; the full selection is two statements (the key's
/// lookup, the page with its relations), fewer than the loaders'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_reads_its_relations_in_one_statement_and_answers_as_the_loaders_do() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    app.tenant("Winery B").await;
    let loaders = app
        .second_instance_with(ServeArgs {
            speed: Speed::without(&[Mechanism::PageRelations]),
            ..ServeArgs::default()
        })
        .await;
    let parts = [
        "currentEnrollment { id status expiresAt stage { name discountPercentage } }",
        "enrollments { id status stage { name } }",
        "cumulativeMembershipDays isClubMember",
        "activities(first: 3) { nodes { id type occurredAt } pageInfo { hasNextPage } }",
        "kinds: activities(first: 2, types: [\"purchase\", \"visit\"]) { nodes { id type } }",
        "orders(first: 2) { nodes { id orderTotal } pageInfo { hasNextPage endCursor } }",
        "pointTransactions(first: 3) { nodes { id points balanceAfter } }",
        "redemptions(first: 2) { nodes { id status } }",
        "communicationPreferences { channel type optedIn }",
        "communications(first: 2) { nodes { id channel status } }",
        "campaignHistory(first: 2) { nodes { id status campaign { id name } } }",
        "leads { id name }",
    ];
    let query = |selection: &str, edges: bool| {
        let nodes = match edges {
            true => format!("edges {{ cursor node {{ id {selection} }} }}"),
            false => format!("nodes {{ id {selection} }}"),
        };
        format!(
            "{{ customers(first: 20, orderBy: {{ field: CREATED_AT, direction: DESC }}) {{ {nodes} }} }}"
        )
    };
    // The page's rows keep the list's order under every ordering, either way, after a
    // cursor or before one (the relations are read around the list's own query).
    let orders = ["CREATED_AT", "LTV", "NAME", "LAST_ACTIVITY"];
    let paged_query = |round: usize, selection: &str, cursor: &Value| {
        let field = orders[round % orders.len()];
        let direction = ["ASC", "DESC"][round / orders.len() % 2];
        let window = match (round % 3, cursor.as_str()) {
            (1, Some(cursor)) => format!("first: 7, after: \"{cursor}\""),
            (2, Some(cursor)) => format!("last: 7, before: \"{cursor}\""),
            _ => "last: 9".to_owned(),
        };
        format!(
            "{{ customers({window}, orderBy: {{ field: {field}, direction: {direction} }}) \
             {{ edges {{ cursor node {{ id {selection} }} }} pageInfo {{ hasNextPage hasPreviousPage }} }} }}"
        )
    };
    // The same pseudo-random selections each run (xorshift).
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..16 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let chosen: Vec<&str> = parts
            .iter()
            .enumerate()
            .filter(|(i, _)| seed >> i & 1 == 1)
            .map(|(_, part)| *part)
            .collect();
        let text = query(&chosen.join(" "), round % 2 == 1);
        let paged = app.gql(&a.admin_key, &text, json!({})).await;
        let loaded = loaders.gql(&a.admin_key, &text, json!({})).await;
        assert!(paged["errors"].is_null(), "{paged}");
        assert_eq!(without_budget(paged), without_budget(loaded), "{text}");
        // The same selection on another ordering, from the middle of its list.
        let field = orders[round % orders.len()];
        let middle = app
            .gql(
                &a.admin_key,
                &format!(
                    "{{ customers(first: 10, orderBy: {{ field: {field} }}) {{ edges {{ cursor }} }} }}"
                ),
                json!({}),
            )
            .await;
        let cursor = &middle["data"]["customers"]["edges"][5]["cursor"];
        let text = paged_query(round, &chosen.join(" "), cursor);
        let paged = app.gql(&a.admin_key, &text, json!({})).await;
        let loaded = loaders.gql(&a.admin_key, &text, json!({})).await;
        assert!(paged["errors"].is_null(), "{paged}");
        assert!(
            !paged["data"]["customers"]["edges"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{text}"
        );
        assert_eq!(without_budget(paged), without_budget(loaded), "{text}");
    }

    // Every part but the aliased second page of activities (its loader's batches depend
    // on timing): all read by the page's relations statement.
    let full = query(
        &parts
            .iter()
            .filter(|part| !part.starts_with("kinds:"))
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
        false,
    );
    let mut spent = Vec::new();
    for server in [&app, &loaders] {
        server.gql(&a.admin_key, &full, json!({})).await;
        // (A key's use is recorded off the request path: let that finish.)
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let before = server.statements.data_statements();
        let r = server.gql(&a.admin_key, &full, json!({})).await;
        assert!(r["errors"].is_null(), "{r}");
        spent.push(server.statements.data_statements() - before);
    }
    assert_eq!(spent[0], 2, "the key's lookup, the page with its relations");
    assert!(spent[1] > spent[0], "the loaders' statements: {}", spent[1]);
}

/// The ids of the first `n` customers `key`'s `customers` lists.
async fn first_customer_ids(app: &TestApp, key: &str, n: usize) -> Vec<Value> {
    let r = app
        .gql(
            key,
            &format!("{{ customers(first: {n}) {{ nodes {{ id }} }} }}"),
            json!({}),
        )
        .await;
    let nodes = r["data"]["customers"]["nodes"].as_array().unwrap();
    nodes.iter().map(|n| n["id"].clone()).collect()
}

/// Queries of several keys of one tenant and role that arrive together share one read
/// group: one message confirms every key, one statement reads every 360, and each
/// answers as alone. Another role's key has a group of its own. A key revoked since the
/// server came to know it (and not heard of: no notification) refuses only its own
/// request: the group's snapshot ends, and every member is answered from a fresh lookup
/// of its own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_360s_of_several_keys_of_one_tenant_share_a_group() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let keys = [
        a.admin_key.clone(),
        app.key(&a, Role::Admin).await,
        app.key(&a, Role::Admin).await,
    ];
    let analyst = app.key(&a, Role::Analyst).await;
    let query = "query($id: ID) { customer(id: $id) { id name pointsBalance
        currentEnrollment { stage { name } } orders(first: 3) { nodes { id orderTotal } } } }";
    let ids = first_customer_ids(&app, &a.admin_key, 6).await;
    assert_eq!(ids.len(), 6);
    for key in keys.iter().chain([&analyst]) {
        app.gql(key, "{ viewer { tenant { id } } }", json!({}))
            .await;
    }
    // (The keys' first uses recorded last_used_at off the request path.)
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut alone = Vec::new();
    for id in &ids {
        let r = app.gql(&a.admin_key, query, json!({ "id": id })).await;
        assert!(r["data"]["customer"]["id"].is_string(), "{r}");
        alone.push(without_budget(r));
    }

    // Six admin queries over three keys, and one analyst query.
    let mut asked: Vec<(String, Value)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (keys[i % 3].clone(), json!({ "id": id })))
        .collect();
    asked.push((analyst.clone(), json!({ "id": ids[0] })));
    let before = app.statements.data_statements();
    let answers = together(&app, query, &asked, 5).await;
    assert_eq!(
        app.statements.data_statements() - before,
        4,
        "per group (admins, analyst): one confirming message and one 360"
    );
    assert_eq!(answers[..6], alone[..], "each answers as alone");
    assert_eq!(answers[6], alone[0], "the analyst's");

    // The third key revoked behind the server's back: its requests get 401, the others
    // their answers.
    app.owner()
        .await
        .batch_execute(&format!(
            "SET session_replication_role = replica;
             UPDATE api_keys SET revoked_at = now() WHERE key_hash = sha256(convert_to('{}', 'UTF8'));
             RESET session_replication_role;",
            keys[2]
        ))
        .await
        .unwrap();
    asked.pop();
    let answers = together(&app, query, &asked, 5).await;
    for (i, answer) in answers.iter().enumerate() {
        match i % 3 {
            2 => assert_eq!(error_code(answer), Some("UNAUTHENTICATED"), "{answer}"),
            _ => assert_eq!(answer, &alone[i], "key {}", i % 3),
        }
    }
}

/// A customer read in one statement and written in the same (batched) request: the
/// operations of a batch run concurrently, and the write's payload must read the
/// customer's relations again, never rows the read filed before the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_the_360_read_is_seen_by_the_same_request() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let id = first_customer(&app, &a).await;
    let read =
        "query($id: ID) { customer(id: $id) { ltv orders(first: 5) { nodes { id orderTotal } } } }";
    let write = "mutation($id: ID!) { recordOrder(input: { customerId: $id, orderTotal: \"1.25\" }) {
        order { id } customer { ltv orders(first: 5) { nodes { id orderTotal } } } userErrors { code } } }";
    for _ in 0..5 {
        let (status, r) = app
            .post(
                Some(&a.admin_key),
                json!([
                    { "query": read, "variables": { "id": id } },
                    { "query": write, "variables": { "id": id } },
                ]),
            )
            .await;
        assert_eq!(status, 200, "{r}");
        let after = &r[1]["data"]["recordOrder"];
        assert!(after["order"]["id"].is_string(), "{r}");
        assert_eq!(
            after["customer"]["orders"]["nodes"][0]["id"], after["order"]["id"],
            "{r}"
        );
        let now = app.gql(&a.admin_key, read, json!({ "id": id })).await;
        assert_eq!(now["data"]["customer"], after["customer"]);
    }
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Attribute {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    type_name: String,
}

/// The attributes of a table or composite type, in order (`columns` picks and orders a
/// table's; a type's are all of them), each with its base type (no precision).
async fn attributes(app: &TestApp, relation: &str, columns: Option<&[String]>) -> Vec<Attribute> {
    let mut owner = app.owner().await;
    let sql = "SELECT a.attname::text AS name, format_type(a.atttypid, NULL) AS type_name
               FROM pg_attribute a
               WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
                 AND ($2::text[] IS NULL OR a.attname = ANY($2))
               ORDER BY coalesce(array_position($2, a.attname::text), a.attnum)";
    diesel::sql_query(sql)
        .bind::<Text, _>(relation)
        .bind::<Nullable<diesel::sql_types::Array<Text>>, _>(columns.map(<[String]>::to_vec))
        .load(&mut owner)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_nested_row_type_lists_its_models_columns_with_the_tables_types() {
    let app = TestApp::start().await;
    let row_types = growthgraph::domain::customers::prefetch::nested_row_types().unwrap();
    assert_eq!(
        row_types.len(),
        15,
        "every part of the 360 and the relations of leads and campaigns pages have a row type"
    );
    for (table, row_type, columns) in row_types {
        let of_table = attributes(&app, table, Some(&columns)).await;
        let of_type = attributes(&app, row_type, None).await;
        assert_eq!(
            of_table.iter().map(|a| &a.name).collect::<Vec<_>>(),
            columns.iter().collect::<Vec<_>>(),
            "{table} has every column the model selects"
        );
        assert_eq!(
            of_type, of_table,
            "{row_type} lists {table}'s selected columns"
        );
    }
}

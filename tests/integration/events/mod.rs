//! The outbox, live subscriptions (both WebSocket protocols), replay without gaps or
//! duplicates, two instances on one database, isolation, and abuse.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use growthgraph::auth::Role;
use growthgraph::db::TenantDb;
use growthgraph::domain::events as outbox;
use growthgraph::error::AppError;
use growthgraph::events::EventHub;
use scoped_futures::ScopedFutureExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use growthgraph::config::ServeArgs;

use crate::common::{user_error_code, TestApp, TestTenant};

mod limits;
mod typed;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) struct Subscriber {
    socket: Socket,
    legacy: bool,
}

impl Subscriber {
    pub(crate) async fn connect(app: &TestApp, key: &str, legacy: bool) -> Self {
        let mut request = app.ws_url().into_client_request().unwrap();
        let protocol = if legacy {
            "graphql-ws"
        } else {
            "graphql-transport-ws"
        };
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        Self::init(socket, key, legacy).await
    }

    /// A graphql-transport-ws subscriber whose socket has a tiny receive buffer: once it
    /// stops reading, the server's writes to it soon block.
    async fn connect_with_small_buffer(app: &TestApp, key: &str) -> Self {
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        tcp.set_recv_buffer_size(4096).unwrap();
        let addr = app.base.trim_start_matches("http://").parse().unwrap();
        let stream = tcp.connect(addr).await.unwrap();
        let mut request = app.ws_url().into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
        let (socket, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .unwrap();
        Self::init(socket, key, false).await
    }

    async fn init(mut socket: Socket, key: &str, legacy: bool) -> Self {
        let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {key}") } });
        socket
            .send(Message::Text(init.to_string().into()))
            .await
            .unwrap();
        let ack = Self::next_json(&mut socket).await.expect("ack");
        assert_eq!(ack["type"], "connection_ack");
        Subscriber { socket, legacy }
    }

    async fn next_json(socket: &mut Socket) -> Option<Value> {
        loop {
            match tokio::time::timeout(Duration::from_secs(15), socket.next())
                .await
                .ok()??
            {
                Ok(Message::Text(text)) => {
                    let v: Value = serde_json::from_str(text.as_str()).unwrap();
                    if v["type"] == "ka" || v["type"] == "ping" || v["type"] == "pong" {
                        continue;
                    }
                    return Some(v);
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    pub(crate) async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.legacy { "start" } else { "subscribe" };
        let message = json!({ "id": id, "type": kind, "payload": { "query": query, "variables": variables } });
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    /// The next `data` payload (or errors) of any subscription.
    pub(crate) async fn next(&mut self) -> Option<Value> {
        loop {
            let message = Self::next_json(&mut self.socket).await?;
            match message["type"].as_str() {
                Some("next") | Some("data") => return Some(message["payload"].clone()),
                Some("error") => return Some(json!({ "errors": message["payload"] })),
                Some("complete") => continue,
                _ => continue,
            }
        }
    }

    async fn events(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            let payload = self.next().await.expect("event arrives");
            assert!(payload["errors"].is_null(), "{payload}");
            out.push(
                payload["data"]
                    .as_object()
                    .unwrap()
                    .values()
                    .next()
                    .unwrap()
                    .clone(),
            );
        }
        out
    }
}

async fn new_lead(app: &TestApp, t: &TestTenant) -> String {
    let r = app.gql(&t.admin_key, "mutation { ingestLead(input: { name: \"Sub\", email: \"sub@example.com\" }) { lead { id } } }", json!({})).await;
    r["data"]["ingestLead"]["lead"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn tag(app: &TestApp, t: &TestTenant, lead: &str, tag: &str) {
    let r = app.gql(&t.admin_key, "mutation($id: ID!, $t: String!) { tagLead(input: { leadId: $id, tag: $t }) { userErrors { code } } }", json!({ "id": lead, "t": tag })).await;
    assert!(
        r["data"]["tagLead"]["userErrors"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{r}"
    );
}

const EVENTS: &str = "subscription($types: [String!], $after: String) { events(types: $types, after: $after) { id type subjectId payload } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_protocols_receive_mutation_events_in_order() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Events A").await;
    let lead = new_lead(&app, &t).await;
    for legacy in [false, true] {
        let mut sub = Subscriber::connect(&app, &t.admin_key, legacy).await;
        sub.subscribe(
            "1",
            "subscription { events(types: [\"lead.tagged\"]) { id type subjectId payload } }",
            json!({}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..3 {
            tag(&app, &t, &lead, &format!("t{i}")).await;
        }
        let events = sub.events(3).await;
        let tags: Vec<&str> = events
            .iter()
            .map(|e| e["payload"]["tag"].as_str().unwrap())
            .collect();
        assert_eq!(tags, ["t0", "t1", "t2"], "legacy={legacy}");
        let ids: Vec<i64> = events
            .iter()
            .map(|e| e["id"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(events
            .iter()
            .all(|e| e["subjectId"] == lead.as_str() && e["type"] == "lead.tagged"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_with_after_gets_exactly_the_missed_events_then_live_ones() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Events A").await;
    let lead = new_lead(&app, &t).await;
    tag(&app, &t, &lead, "before").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let polled = app
        .gql(
            &t.admin_key,
            "{ events(first: 100) { edges { cursor node { id type } } pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let after = polled["data"]["events"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_owned();

    // Missed while "disconnected".
    for i in 0..5 {
        tag(&app, &t, &lead, &format!("missed {i}")).await;
    }
    // Writers keep going while the partner reconnects.
    let writer = {
        let (app_url, key, lead) = (app.base.clone(), t.admin_key.clone(), lead.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..20 {
                client
                    .post(format!("{app_url}/graphql"))
                    .bearer_auth(&key)
                    .json(&json!({ "query": "mutation($id: ID!, $t: String!) { tagLead(input: { leadId: $id, tag: $t }) { userErrors { code } } }", "variables": { "id": lead, "t": format!("live {i}") } }))
                    .send()
                    .await
                    .unwrap();
            }
        })
    };
    let mut sub = Subscriber::connect(&app, &t.admin_key, false).await;
    sub.subscribe(
        "1",
        EVENTS,
        json!({ "types": ["lead.tagged"], "after": after }),
    )
    .await;
    writer.await.unwrap();
    let events = sub.events(25).await;
    let positions: Vec<i64> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    let unique: BTreeSet<i64> = positions.iter().copied().collect();
    assert_eq!(
        unique.len(),
        positions.len(),
        "duplicate at the seam: {positions:?}"
    );
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order: {positions:?}"
    );
    let tags: Vec<&str> = events
        .iter()
        .map(|e| e["payload"]["tag"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..5)
        .map(|i| format!("missed {i}"))
        .chain((0..20).map(|i| format!("live {i}")))
        .collect();
    assert_eq!(tags, expected, "a gap or a reordering");
    // And the polling side agrees with what was pushed.
    let polled = app.gql(&t.admin_key, "query($a: String) { events(after: $a, first: 100, types: [\"lead.tagged\"]) { nodes { id } } }", json!({ "a": after })).await;
    let polled: Vec<i64> = polled["data"]["events"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(polled, positions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_unit_of_work_publishes_nothing() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Events A").await;
    let mut sub = Subscriber::connect(&app, &t.admin_key, false).await;
    sub.subscribe("1", EVENTS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let db = TenantDb::new(app.pool.clone(), t.id);
    let rolled_back = db
        .run(|conn, scope| {
            async move {
                outbox::record(
                    conn,
                    scope,
                    "lead.tagged",
                    Uuid::new_v4(),
                    json!({ "tag": "ghost" }),
                )
                .await?;
                Err::<(), AppError>(AppError::Unavailable)
            }
            .scope_boxed()
        })
        .await;
    assert!(rolled_back.is_err());
    // A refused mutation (a user error) rolls back its writes too.
    let r = app.gql(&t.admin_key, "mutation { tagLead(input: { leadId: \"00000000-0000-0000-0000-000000000000\", tag: \"x\" }) { userErrors { code } } }", json!({})).await;
    assert_eq!(user_error_code(&r, "tagLead"), "NOT_FOUND");
    // Then a real one: the first thing the subscriber sees is that.
    let lead = new_lead(&app, &t).await;
    let events = sub.events(1).await;
    assert_eq!(events[0]["type"], "lead.created");
    assert_eq!(events[0]["subjectId"], lead.as_str());
    let all = app
        .gql(
            &t.admin_key,
            "{ events(first: 100) { nodes { type payload } } }",
            json!({}),
        )
        .await;
    assert!(!all.to_string().contains("ghost"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_written_through_one_instance_reaches_a_subscriber_of_another() {
    let one = TestApp::start().await;
    let two = one.second_instance().await;
    let t = one.bare_tenant("Events A").await;
    let mut sub = Subscriber::connect(&two, &t.admin_key, false).await;
    sub.subscribe("1", EVENTS, json!({ "types": ["lead.created"] }))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lead = new_lead(&one, &t).await;
    let events = sub.events(1).await;
    assert_eq!(events[0]["subjectId"], lead.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_never_receives_another_tenants_events() {
    let app = TestApp::start().await;
    let a = app.bare_tenant("Events A").await;
    let b = app.bare_tenant("Events B").await;
    let partner_b = app.key(&b, Role::Partner).await;
    let mut sub = Subscriber::connect(&app, &partner_b, false).await;
    sub.subscribe("1", EVENTS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        new_lead(&app, &a).await;
    }
    let b_lead = new_lead(&app, &b).await;
    let events = sub.events(1).await;
    assert_eq!(
        events[0]["subjectId"],
        b_lead.as_str(),
        "the first event B sees is B's own"
    );
    // Replay from the beginning also holds only B's events.
    let mut replay = Subscriber::connect(&app, &partner_b, true).await;
    replay.subscribe("1", EVENTS, json!({ "after": "0" })).await;
    let events = replay.events(1).await;
    assert_eq!(events[0]["subjectId"], b_lead.as_str());
    let more = tokio::time::timeout(Duration::from_millis(1500), replay.next()).await;
    assert!(
        more.is_err(),
        "nothing else: A's events are never replayed to B ({more:?})"
    );
    // Analysts may not subscribe; widget keys may not open a socket at all.
    let analyst = app.key(&b, Role::Analyst).await;
    let mut sub = Subscriber::connect(&app, &analyst, false).await;
    sub.subscribe("1", EVENTS, json!({})).await;
    let payload = sub.next().await.unwrap();
    assert!(payload.to_string().contains("FORBIDDEN"), "{payload}");
}

/// Writes `count` `lead.tagged` events with `payload` for `tenant`, in one transaction.
async fn record_events(app: &TestApp, tenant: &TestTenant, count: usize, payload: Value) {
    let db = TenantDb::new(app.pool.clone(), tenant.id);
    db.run(|conn, scope| {
        async move {
            for _ in 0..count {
                outbox::record(conn, scope, "lead.tagged", Uuid::new_v4(), payload.clone()).await?;
            }
            Ok::<_, AppError>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
}

impl Subscriber {
    async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    /// The next protocol message, pings and pongs included.
    async fn raw(&mut self) -> Value {
        match tokio::time::timeout(Duration::from_secs(10), self.socket.next())
            .await
            .expect("a message arrives")
        {
            Some(Ok(Message::Text(text))) => serde_json::from_str(text.as_str()).unwrap(),
            Some(Ok(Message::Close(frame))) => {
                json!({ "closed": frame.map(|f| u16::from(f.code)) })
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

const PLAIN: &str = "subscription { feed: events(types: [\"lead.tagged\"]) { __typename id kind: type occurredAt subjectId payload } }";

const WITH_FRAGMENT: &str = "subscription { feed: events(types: [\"lead.tagged\"]) { ...E } } fragment E on Event { __typename id kind: type occurredAt subjectId payload }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_selections_are_rendered_directly_exactly_as_the_schema_would() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Events A").await;
    let lead = new_lead(&app, &t).await;
    for legacy in [false, true] {
        let mut sub = Subscriber::connect(&app, &t.admin_key, legacy).await;
        sub.subscribe("plain", PLAIN, json!({})).await;
        sub.subscribe("fragment", WITH_FRAGMENT, json!({})).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let direct = app
            .metric("growthgraph_websocket_payloads_total{lane=\"direct\"}")
            .await;
        let executed = app
            .metric("growthgraph_websocket_payloads_total{lane=\"executed\"}")
            .await;
        tag(&app, &t, &lead, "vip").await;
        let mut payloads = std::collections::BTreeMap::new();
        while payloads.len() < 2 {
            let message = sub.raw().await;
            assert_eq!(message["type"], if legacy { "data" } else { "next" });
            payloads.insert(message["id"].as_str().unwrap().to_owned(), message);
        }
        // The plain selection took the direct lane, the fragment went through the schema.
        assert_eq!(
            app.metric("growthgraph_websocket_payloads_total{lane=\"direct\"}")
                .await,
            direct + 1
        );
        assert_eq!(
            app.metric("growthgraph_websocket_payloads_total{lane=\"executed\"}")
                .await,
            executed + 1
        );
        let (plain, fragment) = (
            &payloads["plain"]["payload"],
            &payloads["fragment"]["payload"],
        );
        assert_eq!(plain, fragment, "legacy={legacy}");
        assert_eq!(plain["data"]["feed"]["__typename"], "Event");
        assert_eq!(plain["data"]["feed"]["kind"], "lead.tagged");
        assert_eq!(plain["data"]["feed"]["subjectId"], lead.as_str());
        assert_eq!(plain["data"]["feed"]["payload"]["tag"], "vip");
        let cost = &plain["extensions"]["cost"]["requestedQueryCost"];
        assert!(cost.as_u64().unwrap() > 0, "{plain}");
        let keys: Vec<&String> = plain["data"]["feed"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 6, "{plain}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_answers_pings_completes_on_request_and_closes_on_violations() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Events A").await;
    let lead = new_lead(&app, &t).await;
    let mut sub = Subscriber::connect(&app, &t.admin_key, false).await;
    sub.send(json!({ "type": "ping" })).await;
    assert_eq!(sub.raw().await["type"], "pong");
    // A query over the socket: its result, then complete.
    sub.send(json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ viewer { tenant { name } } }" } }))
        .await;
    let result = sub.raw().await;
    assert_eq!(result["id"], "q");
    assert_eq!(
        result["payload"]["data"]["viewer"]["tenant"]["name"],
        "Events A"
    );
    assert_eq!(sub.raw().await, json!({ "type": "complete", "id": "q" }));
    // A subscription the client completes gets no more events.
    sub.subscribe("s", PLAIN, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    sub.send(json!({ "id": "s", "type": "complete" })).await;
    assert_eq!(sub.raw().await, json!({ "type": "complete", "id": "s" }));
    tag(&app, &t, &lead, "after-complete").await;
    sub.send(json!({ "type": "ping" })).await;
    assert_eq!(
        sub.raw().await["type"],
        "pong",
        "no event arrived for the completed subscription"
    );
    // Reusing a live id closes the socket with 4409.
    sub.subscribe("d", PLAIN, json!({})).await;
    sub.subscribe("d", PLAIN, json!({})).await;
    assert_eq!(sub.raw().await, json!({ "closed": 4409 }));
    // So do a message that is not the protocol's (4400) and a second init (4429).
    let mut sub = Subscriber::connect(&app, &t.admin_key, false).await;
    sub.send(json!({ "type": "subscribe", "payload": "not a request" }))
        .await;
    assert_eq!(sub.raw().await, json!({ "closed": 4400 }));
    let mut sub = Subscriber::connect(&app, &t.admin_key, false).await;
    sub.send(json!({ "type": "connection_init", "payload": {} }))
        .await;
    assert_eq!(sub.raw().await, json!({ "closed": 4429 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_gets_the_same_slow_consumer_error_in_both_lanes() {
    let app = TestApp::start_with(ServeArgs {
        ws_write_timeout_ms: 60_000,
        ..ServeArgs::default()
    })
    .await;
    let t = app.bare_tenant("Events A").await;
    // A client with a tiny receive buffer subscribes twice, then stops reading while far
    // more events than the hub's ring (plus the socket buffers) are published.
    let mut sub = Subscriber::connect_with_small_buffer(&app, &t.admin_key).await;
    sub.subscribe("plain", PLAIN, json!({})).await;
    sub.subscribe("fragment", WITH_FRAGMENT, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let filler = json!({ "filler": "x".repeat(8 * 1024) });
    record_events(&app, &t, 2 * growthgraph::events::BUFFER, filler).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Reading again: some events, then each subscription's error and its completion.
    let mut errors = std::collections::BTreeMap::new();
    let mut completed = BTreeSet::new();
    let mut events = 0;
    while completed.len() < 2 {
        let message = sub.raw().await;
        let id = message["id"].as_str().unwrap_or_default().to_owned();
        match message["type"].as_str() {
            Some("next") if message["payload"]["errors"].is_array() => {
                errors.insert(id, message["payload"].clone());
            }
            Some("next") => events += 1,
            Some("complete") => {
                completed.insert(id);
            }
            _ => panic!("unexpected {message}"),
        }
    }
    assert!(events < 4 * growthgraph::events::BUFFER, "{events}");
    assert_eq!(errors.len(), 2, "{errors:?}");
    let (plain, fragment) = (&errors["plain"], &errors["fragment"]);
    assert_eq!(plain, fragment);
    assert_eq!(plain["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(plain["errors"][0]["path"], json!(["feed"]));
}

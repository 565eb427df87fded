//! Bounded subscriptions: per socket, per key, consumers that never read or stopped reading cut off.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_subscriptions_on_one_socket_are_refused() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Events A").await;
    let mut sub = Subscriber::connect(&app, &t.admin_key, false).await;
    for i in 0..21 {
        sub.subscribe(&i.to_string(), EVENTS, json!({})).await;
    }
    let payload = sub.next().await.unwrap();
    assert!(payload.to_string().contains("RATE_LIMITED"), "{payload}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_never_reads_is_cut_off_instead_of_growing_memory() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Events A").await;
    let hub = EventHub::new(app.pool.clone());
    let stream = hub.subscribe(t.id, None).await.unwrap();
    // Far more events than the per-tenant buffer, published while nobody reads.
    record_events(&app, &t, growthgraph::events::BUFFER + 200, json!({})).await;
    // Wait until every event is sequenced (by this hub or the app's own listener).
    for _ in 0..50 {
        hub.sequence().await.unwrap();
        let pending: i64 = {
            use diesel_async::RunQueryDsl;
            #[derive(diesel::QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut owner = app.owner().await;
            diesel::sql_query("SELECT count(*) AS n FROM domain_events WHERE position IS NULL")
                .get_result::<N>(&mut owner)
                .await
                .unwrap()
                .n
        };
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hub.fetch_new().await.unwrap();
    let items: Vec<_> = tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        items.last().unwrap().is_err(),
        "the stream ends with a slow-consumer error"
    );
    assert!(items.len() <= growthgraph::events::BUFFER + 1);
}

/// The server's open WebSocket connections.
async fn open_sockets(app: &TestApp) -> u64 {
    app.metric("growthgraph_websocket_connections").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_whose_client_stopped_reading_is_dropped_after_the_write_timeout() {
    let app = TestApp::start_with(ServeArgs {
        ws_write_timeout_ms: 300,
        ..ServeArgs::default()
    })
    .await;
    let t = app.bare_tenant("Events A").await;
    // A client with a tiny receive buffer that subscribes, then never reads again.
    let mut sub = Subscriber::connect_with_small_buffer(&app, &t.admin_key).await;
    sub.subscribe("1", EVENTS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(open_sockets(&app).await, 1);
    // More than the socket buffers hold (but fewer events than the hub's ring, so this is
    // the write timeout at work, not the slow-consumer cut-off).
    let filler = json!({ "filler": "x".repeat(32 * 1024) });
    record_events(&app, &t, 300, filler).await;
    const { assert!(300 < growthgraph::events::BUFFER) };
    let mut open = 1;
    for _ in 0..100 {
        open = open_sockets(&app).await;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0, "the stalled socket was dropped");
    // What the client finds when it finally reads: part of the events, then the end.
    let mut received = 0;
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(10), sub.socket.next()).await
    {
        if matches!(message, Message::Text(_)) {
            received += 1;
        }
    }
    assert!(received < 300, "received {received} of 300 before the cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_may_hold_a_bounded_number_of_sockets() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Events A").await;
    let mut open = Vec::new();
    for _ in 0..growthgraph::http::MAX_SOCKETS_PER_KEY {
        open.push(Subscriber::connect(&app, &t.admin_key, false).await);
    }
    let mut request = app.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", t.admin_key) } });
    socket
        .send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert_eq!(closed, Some(4429));
    // Closing one frees a slot.
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    Subscriber::connect(&app, &t.admin_key, false).await;
}

//! GraphQL over WebSocket, `graphql-transport-ws` and the legacy `graphql-ws`, from the
//! moment the connection is initialised (authentication happens before, in
//! [`crate::http`]).
//!
//! Every operation runs through the schema like any request. An event subscription whose
//! selection is plain `Event` fields then takes the *direct lane* offered in its request
//! data: it hands its event stream to this transport, which renders each event's message
//! itself. Delivering one event to 10 000 subscribers then costs 10 000 small writes, not
//! 10 000 executions of the selection (which were most of the fan-out's CPU).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_graphql::http::{ClientMessage, WebSocketProtocols};
use async_graphql::{Data, Request};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{AbortHandle, Abortable, BoxStream, SelectAll};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::app::AppState;
use crate::graphql::guard::RequestGuard;
use crate::graphql::lane::{DirectLane, Payload};

/// Close codes of graphql-transport-ws (and 1001, going away).
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_BAD_MESSAGE: u16 = 4400;
const CLOSE_DUPLICATE_ID: u16 = 4409;
const CLOSE_TOO_MANY_INITS: u16 = 4429;

/// The protocol the client asked for in `Sec-WebSocket-Protocol` (its first supported one).
pub fn requested_protocol(header: Option<&str>) -> Option<WebSocketProtocols> {
    header?
        .split(',')
        .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
}

/// An operation's messages, tagged with its id; `None` once it completed.
type OperationStream = BoxStream<'static, (Arc<str>, Option<Payload>)>;

/// Serves an initialised connection: acknowledges it, then runs operations until the
/// client leaves or breaks the protocol, a write stalls for the write timeout (a client
/// that stopped reading), or the server shuts down (close 1001, sent within a second).
pub async fn serve(
    state: AppState,
    protocol: WebSocketProtocols,
    data: Data,
    budget_holder: uuid::Uuid,
    mut socket: WebSocket,
) {
    let data = Arc::new(data);
    let mut operations: SelectAll<OperationStream> = SelectAll::new();
    let mut running: HashMap<String, AbortHandle> = HashMap::new();
    let mut writer = Writer {
        timeout: Duration::from_millis(state.limits.ws_write_timeout_ms),
        shutdown: state.shutdown.subscribe(),
    };
    if !writer
        .send(&mut socket, text(r#"{"type":"connection_ack"}"#))
        .await
    {
        return;
    }
    loop {
        // Deliveries first: a socket woken by an event does not poll its reader.
        let outgoing = tokio::select! {
            biased;
            Some((id, payload)) = operations.next(), if !operations.is_empty() => {
                match payload {
                    Some(payload) => {
                        let counter = match payload {
                            Payload::Executed(_) => &state.metrics.ws_payloads_executed,
                            Payload::Rendered(_) => &state.metrics.ws_payloads_rendered,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        text(next_message(protocol, &id, payload))
                    }
                    None => {
                        running.remove(&*id);
                        text(complete_message(&id))
                    }
                }
            }
            message = socket.recv() => {
                let bytes = match message {
                    Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                };
                match ClientMessage::from_bytes(bytes) {
                    Err(_) => close(CLOSE_BAD_MESSAGE, "Invalid message received".into()),
                    Ok(ClientMessage::ConnectionInit { .. }) => close(
                        CLOSE_TOO_MANY_INITS,
                        "Too many initialisation requests".into(),
                    ),
                    Ok(ClientMessage::Start { id, payload }) => match running.entry(id) {
                        Entry::Occupied(taken) => close(
                            CLOSE_DUPLICATE_ID,
                            format!("Subscriber for {} already exists", taken.key()),
                        ),
                        Entry::Vacant(free) => {
                            let (abort, registration) = AbortHandle::new_pair();
                            let operation = operation(
                                &state,
                                payload,
                                data.clone(),
                                budget_holder,
                                free.key(),
                            );
                            operations.push(Abortable::new(operation, registration).boxed());
                            free.insert(abort);
                            continue;
                        }
                    },
                    Ok(ClientMessage::Stop { id }) => match running.remove(&id) {
                        Some(abort) => {
                            abort.abort();
                            text(complete_message(&id))
                        }
                        None => continue,
                    },
                    Ok(ClientMessage::ConnectionTerminate) => return,
                    Ok(ClientMessage::Ping { .. }) => text(r#"{"type":"pong"}"#),
                    Ok(ClientMessage::Pong { .. }) => continue,
                }
            }
            _ = writer.stopping() => return goodbye(&mut socket).await,
        };
        if !writer.send(&mut socket, outgoing).await {
            return;
        }
    }
}

/// Writes to the socket, bounded by the write timeout and cut short by shutdown.
struct Writer {
    timeout: Duration,
    shutdown: watch::Receiver<bool>,
}

impl Writer {
    /// Sends `message`; false once the connection is over (it failed or stalled, the
    /// message closed it, or the server is shutting down).
    async fn send(&mut self, socket: &mut WebSocket, message: Message) -> bool {
        let closing = matches!(message, Message::Close(_));
        // Most writes complete at once: the timer is armed only for one that waits.
        let sent = {
            let mut send = std::pin::pin!(socket.send(message));
            match futures_util::poll!(send.as_mut()) {
                Poll::Ready(sent) => Some(Ok(sent)),
                Poll::Pending => tokio::select! {
                    biased;
                    sent = tokio::time::timeout(self.timeout, send) => Some(sent),
                    _ = self.stopping() => None,
                },
            }
        };
        let Some(sent) = sent else {
            goodbye(socket).await;
            return false;
        };
        match sent {
            Ok(Ok(())) => !closing,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::info!("dropping a WebSocket whose client stopped reading");
                false
            }
        }
    }

    async fn stopping(&mut self) {
        let _ = self.shutdown.wait_for(|stop| *stop).await;
    }
}

/// The server is shutting down: say so (an error only means the client already left; a
/// client that stopped reading gets a second at most).
async fn goodbye(socket: &mut WebSocket) {
    let goodbye = socket.send(close(CLOSE_GOING_AWAY, "server shutting down".into()));
    let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
}

/// Runs one operation through the schema, then, if its resolver took the direct lane,
/// continues with the lane's payloads; ends with `None`.
/// An operation refused before it runs (over a limit, or over its tenant's budget)
/// answers its error and completes.
fn operation(
    state: &AppState,
    mut request: Request,
    data: Arc<Data>,
    budget_holder: uuid::Uuid,
    id: &str,
) -> OperationStream {
    let unresolved = state
        .persisted
        .resolve(&mut request)
        .err()
        .map(|unresolved| {
            let refusal = super::Unreadable::from(unresolved);
            let error = async_graphql::ServerError::new(refusal.message, None);
            let mut error = error;
            error.extensions = Some({
                let mut extensions = async_graphql::ErrorExtensionValues::default();
                extensions.set("code", refusal.code);
                extensions
            });
            async_graphql::Response::from_errors(vec![error])
        });
    let prepared = state.guard.prepare(&mut request);
    let cost = prepared.cost;
    let refused = unresolved
        .or_else(|| prepared.refusal_response())
        .or_else(|| {
            let throttled = state
                .budgets
                .charge(budget_holder, cost.unwrap_or_default())
                .err()?;
            Some(RequestGuard::throttled(
                cost.unwrap_or_default(),
                &throttled,
            ))
        });
    let id: Arc<str> = id.into();
    if let Some(refused) = refused {
        return futures_util::stream::iter([Some(Payload::Executed(refused)), None])
            .map(move |payload| (id.clone(), payload))
            .boxed();
    }
    let lane = DirectLane::new(cost.unwrap_or_default());
    let executed = state
        .schema
        .execute_stream_with_session_data(request.data(lane.clone()), data)
        .map(move |mut response| {
            RequestGuard::finish(&mut response, cost, None, None);
            Payload::Executed(response)
        });
    let direct = futures_util::stream::once(async move { lane.taken() })
        .filter_map(futures_util::future::ready)
        .flatten();
    let running = Running::start();
    executed
        .chain(direct)
        .map(Some)
        .chain(futures_util::stream::once(async { None }))
        .map(move |payload| {
            let _counted = &running;
            (id.clone(), payload)
        })
        .boxed()
}

/// A subscription running, for `growthgraph_subscriptions`: counted from its start until
/// its stream is dropped (completed, stopped, or its socket gone).
struct Running;

impl Running {
    fn start() -> Running {
        crate::telemetry::TELEMETRY.subscriptions.inc();
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        crate::telemetry::TELEMETRY.subscriptions.dec();
    }
}

fn next_message(protocol: WebSocketProtocols, id: &str, payload: Payload) -> String {
    let kind = match protocol {
        WebSocketProtocols::GraphQLWS => "next",
        WebSocketProtocols::SubscriptionsTransportWS => "data",
    };
    let payload = match payload {
        Payload::Rendered(json) => json,
        Payload::Executed(response) => serde_json::to_string(&response)
            .unwrap_or_else(|_| r#"{"errors":[{"message":"unserialisable response"}]}"#.into()),
    };
    format!(
        r#"{{"type":"{kind}","id":{},"payload":{payload}}}"#,
        serde_json::Value::from(id)
    )
}

fn complete_message(id: &str) -> String {
    serde_json::json!({ "type": "complete", "id": id }).to_string()
}

fn text(message: impl Into<String>) -> Message {
    Message::Text(message.into().into())
}

fn close(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

//! The hand-off between a subscription resolver and the WebSocket transport: an
//! operation's payloads are either responses the schema executed or JSON the resolver
//! rendered itself ([`Payload`]), and a resolver whose selection is plain may take the
//! transport's [`DirectLane`] (see `http::ws`).

use std::sync::{Arc, Mutex};

use async_graphql::Response;
use futures_util::stream::BoxStream;

/// What an operation sends: a response the schema executed, or the JSON of one the direct
/// lane rendered.
pub enum Payload {
    Executed(Response),
    Rendered(String),
}

/// Offered to every WebSocket operation through its request data. A subscription resolver
/// may take it with its own stream of payloads; it then returns an empty stream to the
/// schema, and the transport continues with the taken one.
#[derive(Clone)]
pub struct DirectLane(Arc<LaneState>);

struct LaneState {
    /// The operation's cost: rendered payloads report it in `extensions.cost` as executed
    /// ones do.
    cost: usize,
    taken: Mutex<Option<BoxStream<'static, Payload>>>,
}

impl DirectLane {
    pub fn new(cost: usize) -> Self {
        DirectLane(Arc::new(LaneState {
            cost,
            taken: Mutex::default(),
        }))
    }

    pub fn cost(&self) -> usize {
        self.0.cost
    }

    /// Hands the operation's payloads to the transport.
    pub fn take(&self, payloads: BoxStream<'static, Payload>) {
        *self.0.taken.lock().expect("not poisoned") = Some(payloads);
    }

    pub fn taken(&self) -> Option<BoxStream<'static, Payload>> {
        self.0.taken.lock().expect("not poisoned").take()
    }
}

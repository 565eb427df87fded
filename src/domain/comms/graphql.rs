use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use async_graphql::{SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::model::{self, Channel, MessageStatus};
use crate::db::children::ChildRelation;
use crate::error::AppError;
use crate::graphql::loaders::{load_child_pages, ChildPage, TenantLoader};

/// One message sent to (or received from) a customer on any channel.
#[derive(SimpleObject, Clone)]
pub struct Communication {
    pub id: ID,
    pub channel: Channel,
    pub direction: String,
    pub provider: Option<String>,
    pub recipient: String,
    pub subject: Option<String>,
    pub status: MessageStatus,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub clicked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<model::Communication> for Communication {
    fn from(c: model::Communication) -> Self {
        Communication {
            id: ID(c.id.to_string()),
            channel: c.channel,
            direction: c.direction,
            provider: c.provider,
            recipient: c.recipient,
            subject: c.subject,
            status: c.status,
            sent_at: c.sent_at,
            delivered_at: c.delivered_at,
            opened_at: c.opened_at,
            clicked_at: c.clicked_at,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommunicationsOf;

const COMMUNICATIONS: ChildRelation = ChildRelation {
    table: "communication_log",
    parent_column: "customer_id",
    sort_column: "created_at",
    kind_column: None,
};

impl Loader<ChildPage<CommunicationsOf>> for TenantLoader {
    type Value = Vec<model::Communication>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ChildPage<CommunicationsOf>],
    ) -> Result<HashMap<ChildPage<CommunicationsOf>, Self::Value>, AppError> {
        load_child_pages(
            self,
            keys,
            &COMMUNICATIONS,
            |_| None,
            |c: &model::Communication| c.customer_id.unwrap_or_default(),
        )
        .await
    }
}

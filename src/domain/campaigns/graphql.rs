use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use async_graphql::{ComplexObject, Context, SimpleObject, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::model::{self, CampaignChannel, CampaignStatus, RecipientStatus};
use super::ops;
use crate::db::children::ChildRelation;
use crate::error::{AppError, AppResult};
use crate::graphql::context::request_context;
use crate::graphql::loaders::{load_child_pages, ChildPage, TenantLoader};

#[derive(SimpleObject, Clone)]
pub struct CampaignSummary {
    pub id: ID,
    pub name: String,
    pub status: CampaignStatus,
    pub channel: CampaignChannel,
    pub started_at: Option<DateTime<Utc>>,
}

impl From<model::Campaign> for CampaignSummary {
    fn from(c: model::Campaign) -> Self {
        CampaignSummary {
            id: ID(c.id.to_string()),
            name: c.name,
            status: c.status,
            channel: c.channel,
            started_at: c.started_at,
        }
    }
}

/// A customer's place in one campaign: the delivery funnel of one recipient row.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct CampaignRecipient {
    pub id: ID,
    pub channel: CampaignChannel,
    pub status: RecipientStatus,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub clicked_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub campaign_id: Uuid,
}

impl From<model::Recipient> for CampaignRecipient {
    fn from(r: model::Recipient) -> Self {
        CampaignRecipient {
            id: ID(r.id.to_string()),
            channel: r.channel,
            status: r.status,
            sent_at: r.sent_at,
            delivered_at: r.delivered_at,
            opened_at: r.opened_at,
            clicked_at: r.clicked_at,
            failed_at: r.failed_at,
            created_at: r.created_at,
            campaign_id: r.campaign_id,
        }
    }
}

#[ComplexObject]
impl CampaignRecipient {
    async fn campaign(&self, ctx: &Context<'_>) -> AppResult<Option<CampaignSummary>> {
        let request = request_context(ctx)?;
        Ok(request
            .loader
            .load_one(CampaignKey(self.campaign_id))
            .await?
            .map(CampaignSummary::from))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CampaignKey(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CampaignHistoryOf;

impl Loader<CampaignKey> for TenantLoader {
    type Value = model::Campaign;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[CampaignKey],
    ) -> Result<HashMap<CampaignKey, Self::Value>, AppError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .db()
            .query(|conn, scope| ops::campaigns_by_ids(conn, scope, &ids).scope_boxed())
            .await?;
        Ok(rows.into_iter().map(|c| (CampaignKey(c.id), c)).collect())
    }
}

const RECIPIENTS_OF_CUSTOMER: ChildRelation = ChildRelation {
    table: "campaign_recipients",
    parent_column: "customer_id",
    sort_column: "created_at",
    kind_column: None,
};

impl Loader<ChildPage<CampaignHistoryOf>> for TenantLoader {
    type Value = Vec<model::Recipient>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ChildPage<CampaignHistoryOf>],
    ) -> Result<HashMap<ChildPage<CampaignHistoryOf>, Self::Value>, AppError> {
        load_child_pages(
            self,
            keys,
            &RECIPIENTS_OF_CUSTOMER,
            |_| None,
            |r: &model::Recipient| r.customer_id.unwrap_or_default(),
        )
        .await
    }
}

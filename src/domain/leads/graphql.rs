use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use async_graphql::{SimpleObject, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::model::{self, Language, Urgency};
use super::ops;
use crate::error::AppError;
use crate::graphql::loaders::TenantLoader;
use crate::graphql::scalars::Decimal;

#[derive(SimpleObject, Clone)]
pub struct Lead {
    pub id: ID,
    pub name: String,
    pub email: String,
    pub message: String,
    pub ai_summary: Option<String>,
    pub intent: Option<String>,
    pub tone: Option<String>,
    pub urgency: Option<Urgency>,
    /// The AI's confidence, 0 to 1.
    pub confidence_score: Option<Decimal>,
    pub archived: bool,
    pub current_tag: Option<String>,
    pub language: Language,
    pub created_at: DateTime<Utc>,
}

impl From<model::Lead> for Lead {
    fn from(l: model::Lead) -> Self {
        Lead {
            id: ID(l.id.to_string()),
            name: l.name,
            email: l.email,
            message: l.message,
            ai_summary: l.ai_summary,
            intent: l.intent,
            tone: l.tone,
            urgency: l.urgency,
            confidence_score: l.confidence_score.map(Decimal),
            archived: l.archived,
            current_tag: l.current_tag,
            language: l.language,
            created_at: l.created_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeadsOfCustomer(pub Uuid);

impl Loader<LeadsOfCustomer> for TenantLoader {
    type Value = Vec<model::Lead>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[LeadsOfCustomer],
    ) -> Result<HashMap<LeadsOfCustomer, Self::Value>, AppError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .db()
            .query(|conn, scope| ops::leads_of_customers(conn, scope, &ids).scope_boxed())
            .await?;
        let mut map: HashMap<LeadsOfCustomer, Self::Value> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for lead in rows {
            if let Some(customer) = lead.customer_id {
                map.entry(LeadsOfCustomer(customer)).or_default().push(lead);
            }
        }
        Ok(map)
    }
}

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::crm_connections;

text_enum!(
    /// The CRMs a tenant may connect.
    pub CrmPlatform {
        #[graphql(name = "COMMERCE7")]
        Commerce7 => "commerce7",
        Shopify => "shopify",
    }
);

/// A tenant's CRM connection, without its credentials.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = crm_connections)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct CrmConnection {
    pub tenant_id: Uuid,
    pub provider: CrmPlatform,
    pub shop: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

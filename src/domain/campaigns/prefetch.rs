//! A `campaigns` page's relations in one statement (switch `page-relations`): the
//! counters (`metrics`) and executions its nodes ask for (under `nodes`, else under
//! `edges { node }`), for every campaign of the page, read as nested rows (see
//! [`crate::db::nested`]) and filed for the child resolvers under their loaders' keys,
//! instead of one loader batch per relation. The rows and their order are the loaders'
//! (`ops::counters_of`, `ops::executions_of`).

use async_graphql::Context;
use diesel::sql_types::Uuid as SqlUuid;
use diesel::QueryableByName;
use uuid::Uuid;

use super::graphql::{CountersKey, ExecutionsOf};
use super::model::{Counters, Execution};
use crate::db::nested::{read_page, row_of, PagePart, Records, Rows};
use crate::db::prefetch::Prefetched;
use crate::error::AppResult;
use crate::graphql::connection::node_selection;
use crate::graphql::context::RequestContext;

/// One campaign of the page with the relations asked for (`NULL` for the others).
#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    /// At most one row.
    #[diesel(sql_type = Records<Counters>)]
    counters: Option<Rows<Counters>>,
    #[diesel(sql_type = Records<Execution>)]
    executions: Option<Rows<Execution>>,
}

/// Reads the relations the page's nodes ask for, for all of `campaigns` (the page's node
/// ids) in one statement, and files them for the child resolvers.
pub async fn page_relations(
    ctx: &Context<'_>,
    request: &RequestContext,
    campaigns: &[Uuid],
) -> AppResult<()> {
    let node = node_selection(ctx);
    let parts = [
        PagePart {
            name: "counters",
            table: "campaign_delivery_counters",
            parent: "campaign_id",
            order: "campaign_id",
            row: row_of::<Counters>(None)?,
            asked: node.field("metrics").exists(),
        },
        PagePart {
            name: "executions",
            table: "campaign_executions",
            parent: "campaign_id",
            order: "started_at, id",
            row: row_of::<Execution>(None)?,
            asked: node.field("executions").exists(),
        },
    ];
    read_page(&request.db, campaigns, &parts, file).await
}

fn file(filed: &Prefetched, row: Row) {
    if let Some(Rows(counters)) = row.counters {
        filed.put([(CountersKey(row.id), counters.into_iter().next())]);
    }
    if let Some(Rows(executions)) = row.executions {
        filed.put([(ExecutionsOf(row.id), Some(executions))]);
    }
}

//! A `campaigns` page and its relations in one statement (switch `page-relations`): the
//! counters (`metrics`) and executions its nodes ask for (under `nodes`, else under
//! `edges { node }`), for every campaign of the page, read as nested rows (see
//! [`crate::db::nested`]) and filed for the child resolvers under their loaders' keys,
//! instead of one loader batch per relation. The rows and their order are the loaders'
//! (`ops::counters_of`, `ops::executions_of`).

use async_graphql::Context;
use diesel::QueryableByName;

use super::graphql::{CountersKey, ExecutionsOf};
use super::model::{Campaign, Counters, Execution};
use super::ops::ListQuery;
use crate::db::nested::{read_page, row_of, PagePart, PageParts, Records, Rows};
use crate::db::prefetch::Prefetched;
use crate::db::Tenant;
use crate::error::AppResult;
use crate::graphql::connection::node_selection;
use crate::graphql::context::RequestContext;

/// One campaign of the page with the relations asked for (`NULL` for the others).
#[derive(QueryableByName)]
struct Row {
    #[diesel(embed)]
    campaign: Campaign,
    /// At most one row.
    #[diesel(sql_type = Records<Counters>)]
    counters: Option<Rows<Counters>>,
    #[diesel(sql_type = Records<Execution>)]
    executions: Option<Rows<Execution>>,
}

/// The page's relations: their rows and order are the loaders'.
static PARTS: PageParts<2> = PageParts::new([
    PagePart {
        name: "counters",
        table: "campaign_delivery_counters",
        parent: "campaign_id",
        order: "campaign_id",
        row: row_of::<Counters>,
    },
    PagePart {
        name: "executions",
        table: "campaign_executions",
        parent: "campaign_id",
        order: "started_at, id",
        row: row_of::<Execution>,
    },
]);

/// Reads a page of campaigns (`list`, `ops::list_query`) and the relations its nodes ask
/// for in one statement, and files them for the child resolvers.
pub async fn campaigns_page<F>(
    ctx: &Context<'_>,
    request: &RequestContext,
    (list, limit): (F, i64),
) -> AppResult<Vec<Campaign>>
where
    F: FnOnce(Tenant) -> AppResult<ListQuery> + Send,
{
    let node = node_selection(ctx);
    let asked = [
        node.field("metrics").exists(),
        node.field("executions").exists(),
    ];
    let around = PARTS.around(asked, file);
    read_page(&request.db, request.speed, (list, limit), around).await
}

fn file(filed: &Prefetched, row: Row) -> Campaign {
    let id = row.campaign.id;
    if let Some(Rows(counters)) = row.counters {
        filed.put([(CountersKey(id), counters.into_iter().next())]);
    }
    if let Some(Rows(executions)) = row.executions {
        filed.put([(ExecutionsOf(id), Some(executions))]);
    }
    row.campaign
}

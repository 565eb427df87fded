//! A `campaigns` page's relations in one statement (switch `page-relations`): the
//! counters (`metrics`) and executions its nodes ask for (under `nodes`, else under
//! `edges { node }`), for every campaign of the page, read as nested rows (see
//! [`crate::db::nested`]) and filed for the child resolvers under their loaders' keys,
//! instead of one loader batch per relation. The rows and their order are the loaders'
//! (`ops::counters_of`, `ops::executions_of`).

use async_graphql::Context;
use diesel::sql_types::{Array, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::graphql::{CountersKey, ExecutionsOf};
use super::model::{Counters, Execution};
use crate::db::nested::{page_statement, row_of, PagePart, Records, Rows};
use crate::db::sql::Prepared;
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
/// ids) in one statement, and files them for the child resolvers. Nothing is read when
/// the selection asks for no relation, or outside a request.
pub async fn page_relations(
    ctx: &Context<'_>,
    request: &RequestContext,
    campaigns: &[Uuid],
) -> AppResult<()> {
    let Some(filed) = request.db.prefetched().cloned() else {
        return Ok(());
    };
    let node = node_selection(ctx);
    let (metrics, executions) = (
        node.field("metrics").exists(),
        node.field("executions").exists(),
    );
    if campaigns.is_empty() || !(metrics || executions) {
        return Ok(());
    }
    let sql = page_statement(&[
        PagePart {
            name: "counters",
            table: "campaign_delivery_counters",
            parent: "campaign_id",
            order: "campaign_id",
            row: row_of::<Counters>(None)?,
            asked: metrics,
        },
        PagePart {
            name: "executions",
            table: "campaign_executions",
            parent: "campaign_id",
            order: "started_at, id",
            row: row_of::<Execution>(None)?,
            asked: executions,
        },
    ]);
    let ids = campaigns.to_vec();
    request
        .db
        .query(|conn, scope| {
            async move {
                let rows: Vec<Row> = Prepared::new(sql)
                    .bind::<SqlUuid, _>(scope.id())
                    .bind::<Array<SqlUuid>, _>(ids)
                    .load(conn)
                    .await?;
                // Filed under the connection's lock: a write of the same request clears
                // them before it begins.
                for row in rows {
                    if let Some(Rows(counters)) = row.counters {
                        filed.put([(CountersKey(row.id), counters.into_iter().next())]);
                    }
                    if let Some(Rows(executions)) = row.executions {
                        filed.put([(ExecutionsOf(row.id), Some(executions))]);
                    }
                }
                diesel::QueryResult::Ok(())
            }
            .scope_boxed()
        })
        .await
}

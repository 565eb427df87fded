//! A `leads` page's relations in one statement (switch `page-relations`): the actions and
//! notes its nodes ask for (under `nodes`, else under `edges { node }`), for every lead of
//! the page, read as nested rows (see [`crate::db::nested`]) and filed for the child
//! resolvers under their loaders' keys, instead of one loader batch per relation. The
//! rows and their order are the loaders' (`ops::actions_of`, `ops::notes_of`).

use async_graphql::Context;
use diesel::sql_types::{Array, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::graphql::{ActionsOf, NotesOf};
use super::model::{LeadAction, LeadNote};
use crate::db::nested::{page_statement, row_of, PagePart, Records, Rows};
use crate::db::sql::Prepared;
use crate::error::AppResult;
use crate::graphql::context::RequestContext;

/// One lead of the page with the relations asked for (`NULL` for the others).
#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Records<LeadAction>)]
    actions: Option<Rows<LeadAction>>,
    #[diesel(sql_type = Records<LeadNote>)]
    notes: Option<Rows<LeadNote>>,
}

/// Reads the relations the page's nodes ask for, for all of `leads` (the page's node ids)
/// in one statement, and files them for the child resolvers. Nothing is read when the
/// selection asks for no relation, or outside a request.
pub async fn page_relations(
    ctx: &Context<'_>,
    request: &RequestContext,
    leads: &[Uuid],
) -> AppResult<()> {
    let Some(filed) = request.db.prefetched().cloned() else {
        return Ok(());
    };
    let node = crate::graphql::connection::node_selection(ctx);
    let (actions, notes) = (node.field("actions").exists(), node.field("notes").exists());
    if leads.is_empty() || !(actions || notes) {
        return Ok(());
    }
    let sql = statement(actions, notes)?;
    let ids = leads.to_vec();
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
                    if let Some(Rows(actions)) = row.actions {
                        filed.put([(ActionsOf(row.id), Some(actions))]);
                    }
                    if let Some(Rows(notes)) = row.notes {
                        filed.put([(NotesOf(row.id), Some(notes))]);
                    }
                }
                diesel::QueryResult::Ok(())
            }
            .scope_boxed()
        })
        .await
}

/// The statement: per lead of `$2` (the tenant's: `$1`), the rows of each relation asked
/// for, in the loaders' order.
fn statement(actions: bool, notes: bool) -> diesel::QueryResult<String> {
    Ok(page_statement(&[
        PagePart {
            name: "actions",
            table: "lead_actions",
            parent: "lead_id",
            order: "\"timestamp\", id",
            row: row_of::<LeadAction>(None)?,
            asked: actions,
        },
        PagePart {
            name: "notes",
            table: "lead_notes",
            parent: "lead_id",
            order: "created_at, id",
            row: row_of::<LeadNote>(None)?,
            asked: notes,
        },
    ]))
}

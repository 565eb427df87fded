//! A `leads` page's relations in one statement (switch `page-relations`): the actions and
//! notes its nodes ask for (under `nodes`, else under `edges { node }`), for every lead of
//! the page, read as nested rows (see [`crate::db::nested`]) and filed for the child
//! resolvers under their loaders' keys, instead of one loader batch per relation. The
//! rows and their order are the loaders' (`ops::actions_of`, `ops::notes_of`).

use async_graphql::Context;
use diesel::sql_types::Uuid as SqlUuid;
use diesel::QueryableByName;
use uuid::Uuid;

use super::graphql::{ActionsOf, NotesOf};
use super::model::{LeadAction, LeadNote};
use crate::db::nested::{read_page, row_of, PagePart, Records, Rows};
use crate::db::prefetch::Prefetched;
use crate::error::AppResult;
use crate::graphql::connection::node_selection;
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
/// in one statement, and files them for the child resolvers.
pub async fn page_relations(
    ctx: &Context<'_>,
    request: &RequestContext,
    leads: &[Uuid],
) -> AppResult<()> {
    let node = node_selection(ctx);
    let parts = [
        PagePart {
            name: "actions",
            table: "lead_actions",
            parent: "lead_id",
            order: "\"timestamp\", id",
            row: row_of::<LeadAction>(None)?,
            asked: node.field("actions").exists(),
        },
        PagePart {
            name: "notes",
            table: "lead_notes",
            parent: "lead_id",
            order: "created_at, id",
            row: row_of::<LeadNote>(None)?,
            asked: node.field("notes").exists(),
        },
    ];
    read_page(&request.db, leads, &parts, file).await
}

fn file(filed: &Prefetched, row: Row) {
    if let Some(Rows(actions)) = row.actions {
        filed.put([(ActionsOf(row.id), Some(actions))]);
    }
    if let Some(Rows(notes)) = row.notes {
        filed.put([(NotesOf(row.id), Some(notes))]);
    }
}

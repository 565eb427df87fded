//! A `leads` page and its relations in one statement (switch `page-relations`): the
//! actions and notes its nodes ask for (under `nodes`, else under `edges { node }`), for
//! every lead of the page, read as nested rows (see [`crate::db::nested`]) and filed for the child
//! resolvers under their loaders' keys, instead of one loader batch per relation. The
//! rows and their order are the loaders' (`ops::actions_of`, `ops::notes_of`).

use async_graphql::Context;
use diesel::QueryableByName;

use super::graphql::{ActionsOf, NotesOf};
use super::model::{Lead, LeadAction, LeadNote};
use super::ops::ListQuery;
use crate::db::nested::{read_page, row_of, PagePart, PageParts, Records, Rows};
use crate::db::prefetch::Prefetched;
use crate::db::Tenant;
use crate::error::AppResult;
use crate::graphql::connection::node_selection;
use crate::graphql::context::RequestContext;

/// One lead of the page with the relations asked for (`NULL` for the others).
#[derive(QueryableByName)]
struct Row {
    #[diesel(embed)]
    lead: Lead,
    #[diesel(sql_type = Records<LeadAction>)]
    actions: Option<Rows<LeadAction>>,
    #[diesel(sql_type = Records<LeadNote>)]
    notes: Option<Rows<LeadNote>>,
}

/// The page's relations: their rows and order are the loaders'.
static PARTS: PageParts<2> = PageParts::new([
    PagePart {
        name: "actions",
        table: "lead_actions",
        parent: "lead_id",
        order: "\"timestamp\", id",
        row: row_of::<LeadAction>,
    },
    PagePart {
        name: "notes",
        table: "lead_notes",
        parent: "lead_id",
        order: "created_at, id",
        row: row_of::<LeadNote>,
    },
]);

/// Reads a page of leads (`list`, `ops::list_query`) and the relations its nodes ask
/// for in one statement, and files them for the child resolvers.
pub async fn leads_page<F>(
    ctx: &Context<'_>,
    request: &RequestContext,
    (list, limit): (F, i64),
) -> AppResult<Vec<Lead>>
where
    F: FnOnce(Tenant) -> AppResult<ListQuery> + Send,
{
    let node = node_selection(ctx);
    let asked = [node.field("actions").exists(), node.field("notes").exists()];
    let around = PARTS.around(asked, file);
    read_page(&request.db, request.speed, (list, limit), around).await
}

fn file(filed: &Prefetched, row: Row) -> Lead {
    let id = row.lead.id;
    if let Some(Rows(actions)) = row.actions {
        filed.put([(ActionsOf(id), Some(actions))]);
    }
    if let Some(Rows(notes)) = row.notes {
        filed.put([(NotesOf(id), Some(notes))]);
    }
    row.lead
}

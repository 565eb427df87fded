//! Relay connections over the keyset pages of [`crate::db::page`]: the cursor type
//! async-graphql encodes, pages turned into connections, the bound on unpaged lists, and
//! the root lists' common resolver ([`created_page`]).

use async_graphql::connection::{Connection, CursorType, Edge};
use async_graphql::OutputType;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::db::page::{CreatedRow, Cursor, PageRequest, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::error::{AppError, AppResult};

/// The most items a list field without pages (`Customer.leads`, `Lead.notes`, …)
/// returns; the cost model charges such a list for this many (see [`super::cost`]).
/// More are reached through the paged root lists.
pub const UNPAGED_LIST_BOUND: usize = 50;

/// The selection below a connection's nodes (the field `ctx` resolves): under `nodes`,
/// else under `edges { node }`.
pub fn node_selection<'a>(ctx: &'a async_graphql::Context<'_>) -> async_graphql::Lookahead<'a> {
    let look = ctx.look_ahead();
    let nodes = look.field("nodes");
    match nodes.exists() {
        true => nodes,
        false => look.field("edges").field("node"),
    }
}

/// An unpaged list's items, at most [`UNPAGED_LIST_BOUND`] of them (the first ones in
/// the list's order).
pub fn bounded<T>(mut items: Vec<T>) -> Vec<T> {
    items.truncate(UNPAGED_LIST_BOUND);
    items
}

#[derive(Debug)]
pub struct InvalidCursor;

impl std::fmt::Display for InvalidCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed cursor")
    }
}

impl<K: Serialize + DeserializeOwned> CursorType for Cursor<K> {
    type Error = InvalidCursor;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        Cursor::decode(s).ok_or(InvalidCursor)
    }

    fn encode_cursor(&self) -> String {
        self.encode()
    }
}

/// A page's rows as a connection.
pub trait IntoConnection<K: Serialize + DeserializeOwned> {
    /// Turns the fetched rows (at most `limit()`, in the order the query walked) into a
    /// connection.
    fn into_connection<T, N>(
        self,
        rows: Vec<T>,
        cursor_of: impl Fn(&T) -> Cursor<K>,
        node_of: impl Fn(T) -> N,
    ) -> Connection<Cursor<K>, N>
    where
        K: Send + Sync,
        N: OutputType;
}

impl<K: Serialize + DeserializeOwned> IntoConnection<K> for PageRequest<K> {
    fn into_connection<T, N>(
        self,
        rows: Vec<T>,
        cursor_of: impl Fn(&T) -> Cursor<K>,
        node_of: impl Fn(T) -> N,
    ) -> Connection<Cursor<K>, N>
    where
        K: Send + Sync,
        N: OutputType,
    {
        let (rows, has_previous, has_next) = self.rows(rows);
        let mut connection = Connection::new(has_previous, has_next);
        connection.edges = rows
            .into_iter()
            .map(|row| Edge::new(cursor_of(&row), node_of(row)))
            .collect();
        connection
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, async_graphql::Enum)]
pub enum OrderDirection {
    #[default]
    Asc,
    Desc,
}

/// A page of a root list in `(created_at, id)` order (`page`: forward or backward, see
/// [`PageRequest::either`]): runs `fetch` (which applies the request's keyset, see
/// [`keyset!`]) in the request's read snapshot, and builds the connection with
/// `(created_at, id)` cursors.
pub async fn created_page<'a, T, E, N, F>(
    ctx: &async_graphql::Context<'_>,
    page: PageRequest<chrono::DateTime<chrono::Utc>>,
    fetch: F,
    node_of: impl Fn(T) -> N,
) -> AppResult<Connection<Cursor<chrono::DateTime<chrono::Utc>>, N>>
where
    F: for<'r> FnOnce(
            &'r mut diesel_async::AsyncPgConnection,
            crate::db::Tenant,
            PageRequest<chrono::DateTime<chrono::Utc>>,
        ) -> scoped_futures::ScopedBoxFuture<'a, 'r, Result<Vec<T>, E>>
        + Send
        + 'a,
    T: CreatedRow + Send + 'a,
    E: Into<AppError> + Send + 'a,
    N: OutputType,
{
    let request = page.clone();
    let rows = crate::graphql::context::request_context(ctx)?
        .db
        .query(move |conn, scope| fetch(conn, scope, request))
        .await?;
    Ok(page.into_connection(rows, CreatedRow::cursor, node_of))
}

/// A list filter's `search` (a case-insensitive substring): at most 200 characters.
pub fn check_search(search: &Option<String>) -> AppResult<()> {
    if search
        .as_ref()
        .is_some_and(|s| s.chars().count() > 200 || s.contains('\0'))
    {
        return Err(AppError::bad_input(
            &["filter", "search"],
            "search must be at most 200 characters",
        ));
    }
    Ok(())
}

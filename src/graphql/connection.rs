//! The one pagination helper: Relay connections over keyset cursors (never OFFSET).
//! A cursor is the sort key of the row plus its id, base64url-encoded JSON: opaque to
//! clients, stable under inserts, and ties in the sort key are broken by id.

use async_graphql::connection::{Connection, CursorType, Edge};
use async_graphql::OutputType;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

pub const DEFAULT_PAGE_SIZE: i32 = 20;
pub const MAX_PAGE_SIZE: i32 = 100;

/// The most items a list field without pages (`Customer.leads`, `Lead.notes`, …)
/// returns; the cost model charges such a list for this many (see [`super::cost`]).
/// More are reached through the paged root lists.
pub const UNPAGED_LIST_BOUND: usize = 50;

/// An unpaged list's items, at most [`UNPAGED_LIST_BOUND`] of them (the first ones in
/// the list's order).
pub fn bounded<T>(mut items: Vec<T>) -> Vec<T> {
    items.truncate(UNPAGED_LIST_BOUND);
    items
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cursor<K> {
    pub key: K,
    pub id: Uuid,
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
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| InvalidCursor)?;
        serde_json::from_slice(&bytes).map_err(|_| InvalidCursor)
    }

    fn encode_cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("cursor serialises"))
    }
}

/// A validated page request: how many rows, and where to start.
#[derive(Debug, Clone)]
pub struct PageRequest<K> {
    /// Page size.
    pub first: i64,
    /// Where the page starts: `after` going forward, `before` going backward.
    pub after: Option<Cursor<K>>,
    /// A backward page (`last`/`before`): fetched in reversed order, returned in order.
    pub backward: bool,
}

impl<K: Serialize + DeserializeOwned> PageRequest<K> {
    pub fn new(first: Option<i32>, after: Option<String>) -> AppResult<Self> {
        let first = first.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(0..=MAX_PAGE_SIZE).contains(&first) {
            return Err(AppError::bad_input(
                &["first"],
                format!("first must be between 0 and {MAX_PAGE_SIZE}"),
            ));
        }
        let after = after
            .map(|s| Cursor::decode_cursor(&s))
            .transpose()
            .map_err(|_| AppError::bad_input(&["after"], "malformed cursor"))?;
        Ok(Self {
            first: i64::from(first),
            after,
            backward: false,
        })
    }

    /// A page in either direction: `first`/`after` forward, or `last`/`before` backward.
    pub fn either(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Self> {
        match (last, before) {
            (None, None) => Self::new(first, after),
            (last, before) => {
                if first.is_some() || after.is_some() {
                    return Err(AppError::bad_input(
                        &["last"],
                        "page forward (first/after) or backward (last/before), not both",
                    ));
                }
                let mut page = Self::new(last, before).map_err(|e| match e {
                    AppError::BadUserInput { message, field } => AppError::BadUserInput {
                        message: message.replace("first", "last"),
                        field: field
                            .iter()
                            .map(|f| {
                                if f == "first" {
                                    "last".into()
                                } else {
                                    "before".into()
                                }
                            })
                            .collect(),
                    },
                    e => e,
                })?;
                page.backward = true;
                Ok(page)
            }
        }
    }

    /// Rows to fetch: one more than asked, to learn whether there is a next page.
    pub fn limit(&self) -> i64 {
        self.first + 1
    }

    /// Turns the fetched rows (at most `limit()`, already in order) into a connection.
    pub fn into_connection<T, N>(
        self,
        mut rows: Vec<T>,
        cursor_of: impl Fn(&T) -> Cursor<K>,
        node_of: impl Fn(T) -> N,
    ) -> Connection<Cursor<K>, N>
    where
        K: Send + Sync,
        N: OutputType,
    {
        let has_more = rows.len() as i64 > self.first;
        rows.truncate(self.first as usize);
        let (has_previous, has_next) = if self.backward {
            rows.reverse();
            (has_more, self.after.is_some())
        } else {
            (self.after.is_some(), has_more)
        };
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

/// Orders a boxed Diesel query by `(key, id)` (`asc` or `desc`: the list's order) and
/// restricts it to the rows past `page`'s cursor: the keyset half of every connection over
/// a non-null sort key. A backward page (`last`/`before`) walks the reversed order from
/// its cursor; [`PageRequest::into_connection`] puts its rows back in the list's order.
#[macro_export]
macro_rules! keyset {
    ($query:expr, $page:expr, $key:expr, $id:expr, asc) => {
        $crate::keyset!(@walk $query, $page, $key, $id, false)
    };
    ($query:expr, $page:expr, $key:expr, $id:expr, desc) => {
        $crate::keyset!(@walk $query, $page, $key, $id, true)
    };
    // The list's order chosen by the request: descending when `$descending` holds.
    ($query:expr, $page:expr, $key:expr, $id:expr, descending: $descending:expr) => {
        $crate::keyset!(@walk $query, $page, $key, $id, $descending)
    };
    (@walk $query:expr, $page:expr, $key:expr, $id:expr, $descending:expr) => {{
        let page = &$page;
        let descending = $descending != page.backward;
        let query = match descending {
            true => $query.order(($key.desc(), $id.desc())),
            false => $query.order(($key.asc(), $id.asc())),
        };
        match (descending, &page.after) {
            (_, None) => query,
            (true, Some($crate::graphql::connection::Cursor { key, id })) => {
                query.filter($key.lt(*key).or($key.eq(*key).and($id.lt(*id))))
            }
            (false, Some($crate::graphql::connection::Cursor { key, id })) => {
                query.filter($key.gt(*key).or($key.eq(*key).and($id.gt(*id))))
            }
        }
    }};
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

/// A row listed newest first: its `(created_at, id)` keyset position.
pub trait CreatedRow {
    fn created_at(&self) -> chrono::DateTime<chrono::Utc>;
    fn id(&self) -> Uuid;

    fn cursor(&self) -> Cursor<chrono::DateTime<chrono::Utc>> {
        Cursor {
            key: self.created_at(),
            id: self.id(),
        }
    }
}

/// `created_row!(Type, ...)`: [`CreatedRow`] for models with `created_at` and `id` fields.
#[macro_export]
macro_rules! created_row {
    ($($row:ty),+ $(,)?) => {
        $(impl $crate::graphql::connection::CreatedRow for $row {
            fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
                self.created_at
            }
            fn id(&self) -> uuid::Uuid {
                self.id
            }
        })+
    };
}

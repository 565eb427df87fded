//! The one loader pattern: a per-request, per-tenant `TenantLoader`, with one
//! `impl Loader<Key>` per relation (next to its domain's resolvers). Each batch is one
//! unit of work through the tenant handle and one `= ANY($keys)` statement, so the number
//! of statements a request runs does not grow with page size.
//!
//! Nested connections ("first N children of each parent") use [`ChildPage`] keys: the
//! batch is grouped by everything but the parent, and each group is one statement that
//! ranks children per parent with a window function.

use std::collections::HashMap;
use std::hash::Hash;

use diesel::pg::Pg;
use diesel::QueryableByName;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::db::children::{first_children, ChildRelation};
use crate::db::TenantDb;
use crate::error::AppError;

pub struct TenantLoader {
    db: TenantDb,
}

impl TenantLoader {
    pub fn new(db: TenantDb) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &TenantDb {
        &self.db
    }
}

/// Where a child page starts: after this (sort key, id), or from the newest.
pub type ChildCursor = Option<(chrono::DateTime<chrono::Utc>, Uuid)>;

/// What the keys of one batch group share: everything but the parent.
type ChildGroup<F> = (i64, ChildCursor, F);

/// Key for "the first `limit` children of `parent`, after an optional cursor, matching
/// `filter`". `limit` is already `first + 1` (to learn whether a next page exists).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChildPage<F> {
    pub parent: Uuid,
    pub limit: i64,
    pub after: ChildCursor,
    pub filter: F,
}

/// Groups child-page keys by everything except the parent.
pub fn group_child_pages<F: Clone + Eq + Hash>(
    keys: &[ChildPage<F>],
) -> Vec<(ChildGroup<F>, Vec<Uuid>)> {
    let mut groups: HashMap<ChildGroup<F>, Vec<Uuid>> = HashMap::new();
    for key in keys {
        groups
            .entry((key.limit, key.after, key.filter.clone()))
            .or_default()
            .push(key.parent);
    }
    groups.into_iter().collect()
}

/// Loads "first N children per parent" pages: one statement per group of keys that
/// differ only by parent. `kinds` extracts an optional kind restriction from the filter.
pub async fn load_child_pages<F, T>(
    loader: &TenantLoader,
    keys: &[ChildPage<F>],
    relation: &'static ChildRelation,
    kinds: impl Fn(&F) -> Option<Vec<String>>,
    parent_of: impl Fn(&T) -> Uuid,
) -> Result<HashMap<ChildPage<F>, Vec<T>>, AppError>
where
    F: Clone + Eq + Hash + Send + Sync,
    T: QueryableByName<Pg> + Send + 'static,
{
    let mut result: HashMap<ChildPage<F>, Vec<T>> = HashMap::new();
    for ((limit, after, filter), parents) in group_child_pages(keys) {
        let kinds = kinds(&filter);
        let rows: Vec<T> = loader
            .db
            .query(|conn, scope| {
                first_children(
                    conn,
                    relation,
                    scope,
                    &parents,
                    limit,
                    after,
                    kinds.as_deref(),
                )
                .scope_boxed()
            })
            .await?;
        for parent in &parents {
            result
                .entry(ChildPage {
                    parent: *parent,
                    limit,
                    after,
                    filter: filter.clone(),
                })
                .or_default();
        }
        for row in rows {
            let key = ChildPage {
                parent: parent_of(&row),
                limit,
                after,
                filter: filter.clone(),
            };
            result.entry(key).or_default().push(row);
        }
    }
    Ok(result)
}

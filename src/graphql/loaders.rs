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

/// `load_by_ids!(Key => Value, fetch, |row| id)`: the loader for one value per id — one
/// `fetch(conn, scope, &ids)` statement per batch.
#[macro_export]
macro_rules! load_by_ids {
    ($key:ident => $value:ty, $fetch:path, $id_of:expr) => {
        impl async_graphql::dataloader::Loader<$key> for $crate::graphql::loaders::TenantLoader {
            type Value = $value;
            type Error = $crate::error::AppError;

            async fn load(
                &self,
                keys: &[$key],
            ) -> Result<std::collections::HashMap<$key, $value>, Self::Error> {
                use scoped_futures::ScopedFutureExt;
                let ids: Vec<uuid::Uuid> = keys.iter().map(|k| k.0).collect();
                let rows = self
                    .db()
                    .query(|conn, scope| $fetch(conn, scope, &ids).scope_boxed())
                    .await?;
                let id_of = $id_of;
                Ok(rows
                    .into_iter()
                    .map(|row| ($key(id_of(&row)), row))
                    .collect())
            }
        }
    };
}

/// `load_groups!(Key => Value, fetch, |row| Option<parent id>)`: the loader for the list of
/// rows under each parent id (every key present, possibly empty).
#[macro_export]
macro_rules! load_groups {
    ($key:ident => $value:ty, $fetch:path, $parent_of:expr) => {
        impl async_graphql::dataloader::Loader<$key> for $crate::graphql::loaders::TenantLoader {
            type Value = Vec<$value>;
            type Error = $crate::error::AppError;

            async fn load(
                &self,
                keys: &[$key],
            ) -> Result<std::collections::HashMap<$key, Vec<$value>>, Self::Error> {
                use scoped_futures::ScopedFutureExt;
                let ids: Vec<uuid::Uuid> = keys.iter().map(|k| k.0).collect();
                let rows = self
                    .db()
                    .query(|conn, scope| $fetch(conn, scope, &ids).scope_boxed())
                    .await?;
                let parent_of = $parent_of;
                let mut map: std::collections::HashMap<$key, Vec<$value>> =
                    keys.iter().map(|k| (*k, Vec::new())).collect();
                for row in rows {
                    if let Some(parent) = parent_of(&row) {
                        map.entry($key(parent)).or_default().push(row);
                    }
                }
                Ok(map)
            }
        }
    };
}

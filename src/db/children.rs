//! "The first N children of each of these parents" in one statement: the nested
//! connections of a page (a customer's latest activities, orders, …) load through this.
//! The parents arrive as one array parameter; each one's page is a `LATERAL` subquery
//! that walks the relation's (tenant, parent, sort key, id) index from its newest row
//! and stops after N, so a statement reads the rows it returns and no others, however
//! many children a parent has. Diesel's DSL cannot express a lateral join, so this is the
//! one place that builds SQL text, from `'static` identifiers only; every value is a bind
//! parameter.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::sql_types::{Array, BigInt, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::sql::Prepared;
use super::Tenant;

/// Which table and columns a child relation uses. Children are newest first.
pub struct ChildRelation {
    pub table: &'static str,
    pub parent_column: &'static str,
    pub sort_column: &'static str,
    /// Optional column the caller may restrict to a set of values (e.g. activity types).
    pub kind_column: Option<&'static str>,
}

impl ChildRelation {
    /// ` AND <kind column> = ANY($param)` when the relation has a kind column and the
    /// caller restricts kinds (bound at `$param`); nothing otherwise.
    fn kinds_filter(&self, param: Option<usize>) -> String {
        match (self.kind_column, param) {
            (Some(column), Some(param)) => format!(" AND {column} = ANY(${param})"),
            _ => String::new(),
        }
    }

    /// Children newest first, ties by id.
    fn newest_first(&self) -> String {
        format!("{} DESC, id DESC", self.sort_column)
    }

    /// One parent's page, newest first: `select` from the relation's rows of the parent
    /// named by the outer expression `parent`, with `filters` (`AND …`) added, `$1` the
    /// tenant and `$limit` the page size (plus one). Both ways of loading child pages read
    /// each parent's page through this.
    fn page_of(&self, select: &str, parent: &str, filters: &str, limit: usize) -> String {
        format!(
            "SELECT {select} FROM {} WHERE tenant_id = $1 AND {} = {parent}{filters} \
             ORDER BY {} LIMIT ${limit}",
            self.table,
            self.parent_column,
            self.newest_first()
        )
    }
}

pub async fn first_children<T>(
    conn: &mut AsyncPgConnection,
    relation: &ChildRelation,
    scope: Tenant,
    parents: &[Uuid],
    limit: i64,
    after: Option<(DateTime<Utc>, Uuid)>,
    kinds: Option<&[String]>,
) -> diesel::QueryResult<Vec<T>>
where
    T: QueryableByName<Pg> + Send + 'static,
{
    // A kind restriction applies only to a relation with a kind column.
    let kinds = kinds.filter(|_| relation.kind_column.is_some());
    let mut filters = String::new();
    let mut next_param = 3;
    if after.is_some() {
        filters.push_str(&format!(
            " AND ({}, id) < (${}, ${})",
            relation.sort_column,
            next_param,
            next_param + 1
        ));
        next_param += 2;
    }
    if kinds.is_some() {
        filters.push_str(&relation.kinds_filter(Some(next_param)));
        next_param += 1;
    }
    // Rows come grouped by parent, in the order of `$2`, each parent's newest first (the
    // parents' ordinality is already sorted, so PostgreSQL only sorts within a parent).
    // The parents' column is not named `id`, so the outer order's `id` is the child's.
    let sql = format!(
        "SELECT child.* FROM unnest($2::uuid[]) WITH ORDINALITY AS parent(key, place) \
         CROSS JOIN LATERAL ({}) child ORDER BY parent.place, {}",
        relation.page_of("*", "parent.key", &filters, next_param),
        relation.newest_first()
    );
    let mut query = Prepared::new(sql)
        .bind::<SqlUuid, _>(scope.id())
        .bind::<Array<SqlUuid>, _>(parents.to_vec());
    if let Some((at, id)) = after {
        query = query.bind::<Timestamptz, _>(at).bind::<SqlUuid, _>(id);
    }
    if let Some(kinds) = kinds {
        query = query.bind::<Array<Text>, _>(kinds.to_vec());
    }
    query.bind::<BigInt, _>(limit).load(conn).await
}

/// The same page for one parent, as a column of an outer statement (see
/// [`super::nested`]): `row` is the `ROW(…)` of the child model, `parent` the outer
/// expression naming the parent, `$1` the tenant, `$limit` the page size (plus one).
pub fn nested_first_children(
    relation: &ChildRelation,
    row: &str,
    parent: &str,
    limit: usize,
    kinds: Option<usize>,
) -> String {
    let kinds = relation.kinds_filter(kinds);
    format!("ARRAY({})", relation.page_of(row, parent, &kinds, limit))
}

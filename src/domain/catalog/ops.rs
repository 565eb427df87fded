use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel_async::AsyncPgConnection;

use super::model::{Discount, Product, WineType};
use crate::db::page::PageRequest;
use crate::db::Tenant;

/// A page of the tenant's products, newest first, of one wine type, varietal, vintage or
/// activity when given.
pub async fn list_products(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    wine_type: Option<WineType>,
    vintage: Option<i32>,
    varietal: Option<String>,
    active: Option<bool>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Product>> {
    crate::newest_first!(
        conn,
        scope,
        products,
        Product,
        page,
        wine_type = wine_type,
        vintage = vintage,
        varietal = varietal,
        is_active = active,
    )
}

/// A page of the tenant's discounts, newest first, active ones (or not) when asked.
pub async fn list_discounts(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    active: Option<bool>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Discount>> {
    crate::newest_first!(conn, scope, discounts, Discount, page, is_active = active)
}

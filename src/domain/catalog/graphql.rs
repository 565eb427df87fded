use async_graphql::connection::Connection;
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;

use super::model::{self, DiscountType, WineType};
use super::ops;
use crate::auth::Access;
use crate::domain::write_payload;
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{created_page, Cursor, PageRequest};
use crate::graphql::scalars::Decimal;

type Page<N> = Connection<Cursor<DateTime<Utc>>, N>;

/// A wine (or anything a winery sells) as its CRM lists it.
#[derive(SimpleObject)]
pub struct Product {
    pub id: ID,
    pub crm_product_id: Option<String>,
    pub sku: Option<String>,
    pub title: String,
    pub wine_type: Option<WineType>,
    pub vintage: Option<i32>,
    pub varietal: Option<String>,
    pub price: Decimal,
    /// Bottles in stock (`null`: not tracked).
    pub inventory: Option<i32>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

impl From<model::Product> for Product {
    fn from(p: model::Product) -> Self {
        Product {
            id: ID(p.id.to_string()),
            crm_product_id: p.crm_product_id,
            sku: p.sku,
            title: p.title,
            wine_type: p.wine_type,
            vintage: p.vintage,
            varietal: p.varietal,
            price: p.price.into(),
            inventory: p.inventory,
            is_active: p.is_active,
            created_at: p.created_at,
        }
    }
}

/// A discount as the CRM applies it (a club stage's discount is one of them).
#[derive(SimpleObject)]
pub struct Discount {
    pub id: ID,
    pub crm_discount_id: Option<String>,
    pub code: String,
    pub title: Option<String>,
    pub discount_type: DiscountType,
    /// A percentage, or an amount of money.
    pub value: Decimal,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

impl From<model::Discount> for Discount {
    fn from(d: model::Discount) -> Self {
        Discount {
            id: ID(d.id.to_string()),
            crm_discount_id: d.crm_discount_id,
            code: d.code,
            title: d.title,
            discount_type: d.discount_type,
            value: d.value.into(),
            starts_at: d.starts_at,
            ends_at: d.ends_at,
            is_active: d.is_active,
            created_at: d.created_at,
        }
    }
}

#[derive(InputObject, Default)]
pub struct ProductFilter {
    pub wine_type: Option<WineType>,
    pub vintage: Option<i32>,
    /// Exactly this varietal (e.g. `Pinot Noir`).
    pub varietal: Option<String>,
    pub active: Option<bool>,
}

#[derive(InputObject, Default)]
pub struct DiscountFilter {
    pub active: Option<bool>,
}

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// The tenant's products, newest first.
    #[graphql(guard = "Access::Read")]
    #[allow(clippy::too_many_arguments)]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<ProductFilter>,
    ) -> AppResult<Page<Product>> {
        let filter = filter.unwrap_or_default();
        if filter
            .varietal
            .as_ref()
            .is_some_and(|v| v.chars().count() > 200)
        {
            return Err(AppError::bad_input(
                &["filter", "varietal"],
                "varietal must be at most 200 characters",
            ));
        }
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move {
                    ops::list_products(
                        conn,
                        scope,
                        filter.wine_type,
                        filter.vintage,
                        filter.varietal,
                        filter.active,
                        &page,
                    )
                    .await
                }
                .scope_boxed()
            },
            Product::from,
        )
        .await
    }

    /// The tenant's discounts, newest first.
    #[graphql(guard = "Access::Read")]
    async fn discounts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<DiscountFilter>,
    ) -> AppResult<Page<Discount>> {
        let active = filter.unwrap_or_default().active;
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::list_discounts(conn, scope, active, &page).await }.scope_boxed()
            },
            Discount::from,
        )
        .await
    }
}

/// A product as the CRM lists it; found again by `crmProductId`, else `sku`.
#[derive(InputObject)]
pub struct UpsertProductInput {
    pub crm_product_id: Option<String>,
    pub sku: Option<String>,
    pub title: String,
    pub wine_type: Option<WineType>,
    pub vintage: Option<i32>,
    pub varietal: Option<String>,
    pub price: Decimal,
    pub inventory: Option<i32>,
    #[graphql(default = true)]
    pub is_active: bool,
}

#[derive(InputObject)]
pub struct UpsertDiscountInput {
    /// How the discount is found again.
    pub code: String,
    pub crm_discount_id: Option<String>,
    pub title: Option<String>,
    pub discount_type: DiscountType,
    pub value: Decimal,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    #[graphql(default = true)]
    pub is_active: bool,
}

crate::payload!(ProductPayload { product: Product } from Option<model::Product>);

crate::payload!(DiscountPayload { discount: Discount } from Option<model::Discount>);

#[derive(Default)]
pub struct CatalogMutation;

#[Object]
impl CatalogMutation {
    /// Creates or updates a product (admins, and partners syncing from a CRM).
    #[graphql(guard = "Access::Ingest")]
    async fn upsert_product(
        &self,
        ctx: &Context<'_>,
        input: UpsertProductInput,
    ) -> AppResult<ProductPayload> {
        let product = ops::ProductInput {
            crm_product_id: input.crm_product_id,
            sku: input.sku,
            title: input.title,
            wine_type: input.wine_type,
            vintage: input.vintage,
            varietal: input.varietal,
            price: input.price.0,
            inventory: input.inventory,
            is_active: input.is_active,
        };
        write_payload(ctx, |conn, scope| {
            async move {
                let id = ops::upsert_product(conn, scope, product).await?;
                Ok(ops::products_by_ids(conn, scope, &[id]).await?.pop())
            }
            .scope_boxed()
        })
        .await
    }

    /// Creates or updates the discount of a code (admins, and partners syncing from a CRM).
    #[graphql(guard = "Access::Ingest")]
    async fn upsert_discount(
        &self,
        ctx: &Context<'_>,
        input: UpsertDiscountInput,
    ) -> AppResult<DiscountPayload> {
        let discount = ops::DiscountInput {
            code: input.code,
            crm_discount_id: input.crm_discount_id,
            title: input.title,
            discount_type: input.discount_type,
            value: input.value.0,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            is_active: input.is_active,
        };
        write_payload(ctx, |conn, scope| {
            async move {
                let id = ops::upsert_discount(conn, scope, discount).await?;
                Ok(ops::discounts_by_ids(conn, scope, &[id]).await?.pop())
            }
            .scope_boxed()
        })
        .await
    }
}

/// A product by its id (order lines name theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProductKey(pub uuid::Uuid);

crate::load_by_ids!(ProductKey => model::Product, ops::products_by_ids, |row: &model::Product| row.id);

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::model::{Discount, DiscountType, Product, WineType};
use crate::db::page::PageRequest;
use crate::db::schema::{discounts, products};
use crate::db::Tenant;
use crate::domain::{check_money, check_text, user_error, OpError, OpResult, UserErrorCode};

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

/// A product as the CRM (or the API) gives it: matched on `crm_product_id`, else `sku`.
#[derive(Debug, Clone, Serialize)]
pub struct ProductInput {
    pub crm_product_id: Option<String>,
    pub sku: Option<String>,
    pub title: String,
    pub wine_type: Option<WineType>,
    pub vintage: Option<i32>,
    pub varietal: Option<String>,
    pub price: BigDecimal,
    pub inventory: Option<i32>,
    pub is_active: bool,
}

fn invalid(field: &str, message: &str) -> OpError {
    user_error(UserErrorCode::Invalid, &["input", field], message)
}

/// A key or name of an input: 1 to 100 characters when given.
fn check_key(field: &str, value: &Option<String>) -> OpResult<()> {
    if value.as_deref() == Some("") {
        return Err(invalid(field, "must be 1 to 100 characters"));
    }
    check_text(field, value.as_deref(), 100)
}

/// Creates or updates a product, found by its CRM id, else its SKU (one of them is
/// required). Upserts of one product run one at a time (an advisory lock on its key):
/// racing ones make one row.
pub async fn upsert_product(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: ProductInput,
) -> OpResult<Uuid> {
    check_key("crmProductId", &input.crm_product_id)?;
    check_key("sku", &input.sku)?;
    let title = input.title.trim();
    if title.is_empty() || title.chars().count() > 200 || title.contains('\0') {
        return Err(invalid("title", "title must be 1 to 200 characters"));
    }
    check_money(&input.price, &["input", "price"])?;
    if input.vintage.is_some_and(|v| !(1800..=2200).contains(&v)) {
        return Err(invalid("vintage", "vintage must be between 1800 and 2200"));
    }
    if input.inventory.is_some_and(|i| i < 0) {
        return Err(invalid("inventory", "inventory may not be negative"));
    }
    check_key("varietal", &input.varietal)?;
    let mut lookup = products::table
        .filter(products::tenant_id.eq(scope.id()))
        .select(products::id)
        .into_boxed();
    let key = match (&input.crm_product_id, &input.sku) {
        (Some(crm), _) => {
            lookup = lookup.filter(products::crm_product_id.eq(crm.clone()));
            format!("crm/{crm}")
        }
        (None, Some(sku)) => {
            lookup = lookup.filter(products::sku.eq(sku.clone()));
            format!("sku/{sku}")
        }
        (None, None) => {
            return Err(invalid(
                "crmProductId",
                "give crmProductId or sku: how the product is found again",
            ))
        }
    };
    crate::db::sql::lock_key(conn, &format!("product/{}/{key}", scope.id())).await?;
    let found: Option<Uuid> = lookup.first(conn).await.optional()?;
    let values = (
        products::crm_product_id.eq(&input.crm_product_id),
        products::sku.eq(&input.sku),
        products::title.eq(title),
        products::wine_type.eq(input.wine_type),
        products::vintage.eq(input.vintage),
        products::varietal.eq(&input.varietal),
        products::price.eq(&input.price),
        products::inventory.eq(input.inventory),
        products::is_active.eq(input.is_active),
    );
    let written = match found {
        Some(id) => {
            diesel::update(
                products::table
                    .filter(products::tenant_id.eq(scope.id()))
                    .filter(products::id.eq(id)),
            )
            .set(values)
            .returning(products::id)
            .get_result(conn)
            .await
        }
        None => {
            diesel::insert_into(products::table)
                .values((products::tenant_id.eq(scope.id()), values))
                .returning(products::id)
                .get_result(conn)
                .await
        }
    };
    // Another product holds the other key (a SKU taken by a product of another CRM id).
    match written {
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Err(user_error(
            UserErrorCode::Conflict,
            &["input", "sku"],
            "another product has this SKU",
        )),
        other => Ok(other?),
    }
}

/// A discount as the CRM (or the API) gives it, matched on its code.
#[derive(Debug, Clone, Serialize)]
pub struct DiscountInput {
    pub code: String,
    pub crm_discount_id: Option<String>,
    pub title: Option<String>,
    pub discount_type: DiscountType,
    pub value: BigDecimal,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub is_active: bool,
}

/// Creates or updates the discount of `code` (one statement: racing upserts make one
/// row). A percentage is at most 100; a discount ends after it starts.
pub async fn upsert_discount(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: DiscountInput,
) -> OpResult<Uuid> {
    let code = input.code.trim();
    let code_ok = !code.is_empty()
        && code.chars().count() <= 64
        && code
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
    if !code_ok {
        return Err(invalid(
            "code",
            "code must be 1 to 64 letters, digits, '-' or '_'",
        ));
    }
    check_key("crmDiscountId", &input.crm_discount_id)?;
    if input
        .title
        .as_ref()
        .is_some_and(|t| t.chars().count() > 200 || t.contains('\0'))
    {
        return Err(invalid("title", "title must be at most 200 characters"));
    }
    check_money(&input.value, &["input", "value"])?;
    if input.discount_type == DiscountType::Percentage && input.value > 100 {
        return Err(invalid("value", "a percentage is at most 100"));
    }
    if let (Some(starts), Some(ends)) = (input.starts_at, input.ends_at) {
        if ends <= starts {
            return Err(invalid("endsAt", "a discount ends after it starts"));
        }
    }
    let values = (
        discounts::crm_discount_id.eq(&input.crm_discount_id),
        discounts::title.eq(&input.title),
        discounts::discount_type.eq(input.discount_type),
        discounts::value.eq(&input.value),
        discounts::starts_at.eq(input.starts_at),
        discounts::ends_at.eq(input.ends_at),
        discounts::is_active.eq(input.is_active),
    );
    Ok(diesel::insert_into(discounts::table)
        .values((
            discounts::tenant_id.eq(scope.id()),
            discounts::code.eq(code),
            values,
        ))
        .on_conflict((discounts::tenant_id, discounts::code))
        .do_update()
        .set(values)
        .returning(discounts::id)
        .get_result(conn)
        .await?)
}

pub async fn products_by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<Product>> {
    products::table
        .filter(products::tenant_id.eq(scope.id()))
        .filter(products::id.eq_any(ids))
        .select(Product::as_select())
        .load(conn)
        .await
}

pub async fn discounts_by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<Discount>> {
    discounts::table
        .filter(discounts::tenant_id.eq(scope.id()))
        .filter(discounts::id.eq_any(ids))
        .select(Discount::as_select())
        .load(conn)
        .await
}

/// The most lines an order may have.
pub const MAX_ORDER_LINES: usize = 500;

/// Checks an order's `lineItems` and links each line to its product: a line names it by
/// `productId` (this tenant's product: else `INVALID`), or by `crmProductId` or `sku`
/// (linked when the tenant has that product; a product not known yet leaves the line as it
/// is). A line is a JSON object with an optional whole `quantity` of 1 to 100 000. Returns
/// the lines with `productId` filled where it was found.
pub async fn link_order_lines(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    lines: &serde_json::Value,
) -> OpResult<serde_json::Value> {
    let invalid = |index: usize, field: &str, message: &str| -> OpError {
        let index = index.to_string();
        user_error(
            UserErrorCode::Invalid,
            &["input", "lineItems", &index, field],
            message,
        )
    };
    let Some(items) = lines.as_array() else {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "lineItems"],
            "lineItems must be a list",
        ));
    };
    if items.len() > MAX_ORDER_LINES {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "lineItems"],
            &format!("an order has at most {MAX_ORDER_LINES} lines"),
        ));
    }
    let (mut ids, mut crm_ids, mut skus) = (Vec::new(), Vec::new(), Vec::new());
    for (index, line) in items.iter().enumerate() {
        if !line.is_object() {
            return Err(invalid(index, "", "a line is an object"));
        }
        let quantity = &line["quantity"];
        if !quantity.is_null()
            && !quantity
                .as_i64()
                .is_some_and(|q| (1..=100_000).contains(&q))
        {
            return Err(invalid(
                index,
                "quantity",
                "quantity is a whole number from 1 to 100000",
            ));
        }
        match &line["productId"] {
            serde_json::Value::Null => {}
            serde_json::Value::String(id) => match Uuid::parse_str(id) {
                Ok(id) => ids.push(id),
                Err(_) => return Err(invalid(index, "productId", "productId is a product's id")),
            },
            _ => return Err(invalid(index, "productId", "productId is a product's id")),
        }
        if let Some(crm) = line["crmProductId"].as_str() {
            crm_ids.push(crm.to_owned());
        }
        if let Some(sku) = line["sku"].as_str() {
            skus.push(sku.to_owned());
        }
    }
    let known: Vec<(Uuid, Option<String>, Option<String>)> = products::table
        .filter(products::tenant_id.eq(scope.id()))
        .filter(
            products::id
                .eq_any(&ids)
                .or(products::crm_product_id.eq_any(&crm_ids))
                .or(products::sku.eq_any(&skus)),
        )
        .select((products::id, products::crm_product_id, products::sku))
        .load(conn)
        .await?;
    let mut linked = Vec::with_capacity(items.len());
    for (index, line) in items.iter().enumerate() {
        let mut line = line.clone();
        let product = match line["productId"].as_str() {
            Some(id) => {
                let found = known.iter().find(|(p, _, _)| p.to_string() == id);
                Some(
                    found
                        .ok_or_else(|| invalid(index, "productId", "no such product"))?
                        .0,
                )
            }
            None => {
                let crm = line["crmProductId"].as_str();
                let sku = line["sku"].as_str();
                known
                    .iter()
                    .find(|(_, c, _)| crm.is_some() && c.as_deref() == crm)
                    .or_else(|| {
                        known
                            .iter()
                            .find(|(_, _, s)| sku.is_some() && s.as_deref() == sku)
                    })
                    .map(|(p, _, _)| *p)
            }
        };
        if let Some(product) = product {
            line["productId"] = serde_json::json!(product);
        }
        linked.push(line);
    }
    Ok(serde_json::Value::Array(linked))
}

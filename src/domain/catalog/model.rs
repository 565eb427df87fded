use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{discounts, products};

text_enum!(pub WineType {
    Red => "red",
    White => "white",
    Rose => "rose",
    Sparkling => "sparkling",
    Dessert => "dessert",
    Fortified => "fortified",
    Orange => "orange",
    Other => "other",
});

text_enum!(pub DiscountType {
    Percentage => "percentage",
    FixedAmount => "fixed_amount",
});

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = products)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct Product {
    pub id: Uuid,
    pub crm_product_id: Option<String>,
    pub sku: Option<String>,
    pub title: String,
    pub wine_type: Option<WineType>,
    pub vintage: Option<i32>,
    pub varietal: Option<String>,
    pub price: BigDecimal,
    pub inventory: Option<i32>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = discounts)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct Discount {
    pub id: Uuid,
    pub crm_discount_id: Option<String>,
    pub code: String,
    pub title: Option<String>,
    pub discount_type: DiscountType,
    pub value: BigDecimal,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

crate::created_row!(Product, Discount);

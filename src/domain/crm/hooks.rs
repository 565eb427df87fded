//! The CRM's webhooks, `POST /hooks/crm/{provider}/{token}`: verified with the CRM's
//! signature, applied once per delivery, mapped onto the same operations as the API
//! (`upsertCustomer`, `recordOrder`, `refundOrder`), idempotent on the CRM's ids.
//!
//! Shopify: `X-Shopify-Hmac-Sha256` is the base64 HMAC-SHA256 of the raw body under the
//! app's client secret (`webhookSecret`); `X-Shopify-Topic` names the event and
//! `X-Shopify-Webhook-Id` the delivery (a retry or a replay carries the same id).

use std::str::FromStr;

use base64::Engine;
use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use super::model::CrmPlatform;
use super::ops;
use crate::db::schema::orders;
use crate::db::Tenant;
use crate::domain::customers::ops as customers;
use crate::domain::{user_error, OpResult, UserErrorCode};

/// Whether `signature` (base64) is Shopify's HMAC-SHA256 of `body` under `secret`,
/// compared in constant time.
pub fn shopify_signature_valid(secret: &str, body: &[u8], signature: &str) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The base64 HMAC-SHA256 Shopify sends for `body` (tests and tools sign with it).
pub fn shopify_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied: the customer, order or refund it wrote.
    Applied(Uuid),
    /// This delivery was applied before: nothing written again.
    Duplicate,
    /// A topic this server does not act on, or nothing to act on (e.g. no email).
    Ignored,
}

fn refused(message: &str) -> crate::domain::OpError {
    user_error(UserErrorCode::Invalid, &["body"], message)
}

/// A CRM order's lines as `recordOrder` takes them (`line` maps one), at most as many as
/// an order may have.
fn order_lines(items: &Value, line: impl Fn(&Value) -> Value) -> Value {
    let lines = items.as_array().into_iter().flatten();
    Value::Array(
        lines
            .take(crate::domain::catalog::ops::MAX_ORDER_LINES)
            .map(line)
            .collect(),
    )
}

/// A Shopify amount (`"199.00"`).
fn money(value: &Value) -> Option<BigDecimal> {
    match value {
        Value::String(s) => BigDecimal::from_str(s).ok(),
        Value::Number(n) => BigDecimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

/// The gid of a Shopify object: its `admin_graphql_api_id`, else made from its `id`.
fn gid(object: &Value, kind: &str) -> Option<String> {
    object["admin_graphql_api_id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            object["id"]
                .as_u64()
                .map(|id| format!("gid://shopify/{kind}/{id}"))
        })
}

/// A customer as a CRM's webhook describes them.
struct Person<'a> {
    email: Option<&'a str>,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    phone: Option<&'a str>,
    crm_id: Option<String>,
}

impl<'a> Person<'a> {
    /// A Shopify customer object (`email`, `first_name`, …), with the order's email when
    /// the customer has none.
    fn shopify(customer: &'a Value, fallback_email: Option<&'a str>) -> Person<'a> {
        Person {
            email: customer["email"].as_str().or(fallback_email),
            first_name: customer["first_name"].as_str(),
            last_name: customer["last_name"].as_str(),
            phone: customer["phone"].as_str(),
            crm_id: gid(customer, "Customer"),
        }
    }

    /// A Commerce7 customer object (`emails[]`, `firstName`, `phones[]`, …).
    fn commerce7(customer: &'a Value) -> Person<'a> {
        Person {
            email: customer["emails"][0]["email"]
                .as_str()
                .or(customer["email"].as_str()),
            first_name: customer["firstName"].as_str(),
            last_name: customer["lastName"].as_str(),
            phone: customer["phones"][0]["phone"].as_str(),
            crm_id: customer["id"].as_str().map(str::to_owned),
        }
    }
}

/// Creates or updates the customer a CRM describes (by email), and records the CRM's id
/// of them; `None` without an email.
async fn upsert_person(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    person: Person<'_>,
) -> OpResult<Option<Uuid>> {
    let Some(email) = person.email.map(str::trim).filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    let name = [person.first_name, person.last_name]
        .into_iter()
        .flatten()
        .filter(|v| !v.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let input = customers::UpsertCustomer {
        email: Some(email.to_ascii_lowercase()),
        name: (!name.is_empty()).then_some(name),
        phone: person.phone.map(str::to_owned),
        ..Default::default()
    };
    let (id, _) = customers::upsert_customer(conn, scope, input, None).await?;
    if let Some(crm_id) = person.crm_id {
        ops::remember_crm_customer(conn, scope, id, crm_id).await?;
    }
    Ok(Some(id))
}

/// Our order of a Shopify order id.
async fn order_of(conn: &mut AsyncPgConnection, scope: Tenant, order: &Value) -> OpResult<Uuid> {
    let crm_id = order
        .as_u64()
        .map(|id| format!("gid://shopify/Order/{id}"))
        .ok_or_else(|| refused("the delivery names no order"))?;
    orders::table
        .filter(orders::tenant_id.eq(scope.id()))
        .filter(orders::crm_order_id.eq(&crm_id))
        .select(orders::id)
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| {
            user_error(
                UserErrorCode::NotFound,
                &["body", "order_id"],
                "no such order (yet): Shopify delivers it again later",
            )
        })
}

/// Applies one verified Shopify delivery in the caller's transaction, once per
/// `delivery_id`.
pub async fn apply_shopify(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    topic: &str,
    delivery_id: &str,
    body: &Value,
) -> OpResult<Applied> {
    if !body.is_object() {
        return Err(refused("the body is not a JSON object"));
    }
    if !ops::first_delivery(conn, scope, CrmPlatform::Shopify, delivery_id, topic).await? {
        return Ok(Applied::Duplicate);
    }
    let applied = match topic {
        "customers/create" | "customers/update" => {
            upsert_person(conn, scope, Person::shopify(body, None)).await?
        }
        "orders/create" => {
            let person = Person::shopify(&body["customer"], body["email"].as_str());
            let Some(customer) = upsert_person(conn, scope, person).await? else {
                return Ok(Applied::Ignored);
            };
            let id = body["id"]
                .as_u64()
                .ok_or_else(|| refused("the order has no id"))?;
            let total = money(&body["total_price"])
                .ok_or_else(|| refused("the order has no total_price"))?;
            let line_items = order_lines(&body["line_items"], |item| {
                json!({
                    "title": item["title"],
                    "sku": item["sku"],
                    "quantity": item["quantity"],
                    "price": item["price"],
                    "crmProductId": item["product_id"]
                        .as_u64()
                        .map(|id| format!("gid://shopify/Product/{id}")),
                })
            });
            let order = customers::RecordOrder {
                customer_id: customer,
                order_total: total,
                subtotal: money(&body["subtotal_price"]),
                discount_total: money(&body["total_discounts"]),
                crm_order_id: gid(body, "Order"),
                order_number: body["name"].as_str().map(str::to_owned),
                ordered_at: body["created_at"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc)),
                is_club_shipment: false,
                line_items,
            };
            let key = format!("shopify:order:{id}");
            Some(customers::record_order(conn, scope, order, Some(&key)).await?)
        }
        "refunds/create" => {
            let order = order_of(conn, scope, &body["order_id"]).await?;
            let id = body["id"]
                .as_u64()
                .ok_or_else(|| refused("the refund has no id"))?;
            let refunded = body["transactions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["kind"] == "refund" && t["status"] == "success")
                .filter_map(|t| money(&t["amount"]))
                .fold(BigDecimal::from(0), |sum, amount| sum + amount);
            if refunded <= 0 {
                return Ok(Applied::Ignored);
            }
            let refund = customers::RefundOrder {
                order_id: order,
                amount: Some(refunded),
            };
            let key = format!("shopify:refund:{id}");
            Some(customers::refund_order(conn, scope, refund, Some(&key)).await?)
        }
        "orders/cancelled" => {
            let order = order_of(conn, scope, &body["id"]).await?;
            let left = orders::table
                .filter(orders::tenant_id.eq(scope.id()))
                .filter(orders::id.eq(order))
                .select(orders::status)
                .first::<String>(conn)
                .await?;
            if left == "refunded" {
                return Ok(Applied::Ignored);
            }
            let refund = customers::RefundOrder {
                order_id: order,
                amount: None,
            };
            let key = format!("shopify:cancel:{}", body["id"]);
            Some(customers::refund_order(conn, scope, refund, Some(&key)).await?)
        }
        _ => None,
    };
    Ok(applied.map_or(Applied::Ignored, Applied::Applied))
}

/// Whether `authorization` is the basic authentication Commerce7 was told to send with its
/// webhooks (`webhookUsername`, `webhookPassword`), compared in constant time.
pub fn commerce7_authorization_valid(credentials: &Value, authorization: &str) -> bool {
    let (Some(user), Some(password)) = (
        credentials["webhookUsername"].as_str(),
        credentials["webhookPassword"].as_str(),
    ) else {
        return false;
    };
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let given = authorization.trim().as_bytes();
    // Equal lengths first; then every byte compared, whatever differs.
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// The delivery id of a Commerce7 webhook (Commerce7 sends none): its object, action, and
/// the id and `updatedAt` of what it carries, hashed. A repeat of the same change has the
/// same id; a later change of the same object another.
pub fn commerce7_delivery_id(body: &Value) -> Option<String> {
    use sha2::Digest;
    let payload = &body["payload"];
    let id = payload["id"].as_str()?;
    let text = format!(
        "{}|{}|{id}|{}",
        body["object"].as_str().unwrap_or(""),
        body["action"].as_str().unwrap_or(""),
        payload["updatedAt"].as_str().unwrap_or("")
    );
    Some(hex::encode(sha2::Sha256::digest(text.as_bytes())))
}

/// A Commerce7 amount: whole cents (`4500` is 45.00).
fn cents(value: &Value) -> Option<BigDecimal> {
    let cents = value.as_i64()?;
    Some(BigDecimal::from(cents) / BigDecimal::from(100))
}

/// Applies one verified Commerce7 delivery (`{ object, action, payload, tenantId }`) in the
/// caller's transaction, once per [`commerce7_delivery_id`]: `Customer` `Create` and
/// `Update` → `upsertCustomer`; `Order` `Create` → the customer, then `recordOrder`
/// (idempotent on the order's id). Other objects and actions are acknowledged.
pub async fn apply_commerce7(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    body: &Value,
) -> OpResult<Applied> {
    let (Some(object), Some(action)) = (body["object"].as_str(), body["action"].as_str()) else {
        return Err(refused("the body has no object and action"));
    };
    let delivery = commerce7_delivery_id(body).ok_or_else(|| refused("the payload has no id"))?;
    let topic = format!("{object}/{action}");
    if !ops::first_delivery(conn, scope, CrmPlatform::Commerce7, &delivery, &topic).await? {
        return Ok(Applied::Duplicate);
    }
    let payload = &body["payload"];
    let applied = match (object, action) {
        ("Customer", "Create" | "Update") => {
            upsert_person(conn, scope, Person::commerce7(payload)).await?
        }
        ("Order", "Create") => {
            let Some(customer) =
                upsert_person(conn, scope, Person::commerce7(&payload["customer"])).await?
            else {
                return Ok(Applied::Ignored);
            };
            let id = payload["id"]
                .as_str()
                .ok_or_else(|| refused("the order has no id"))?;
            let total =
                cents(&payload["total"]).ok_or_else(|| refused("the order has no total"))?;
            let line_items = order_lines(&payload["items"], |item| {
                json!({
                    "title": item["productTitle"],
                    "sku": item["sku"],
                    "quantity": item["quantity"],
                    "price": cents(&item["price"]).map(|p| p.to_string()),
                    "crmProductId": item["productId"],
                })
            });
            let order = customers::RecordOrder {
                customer_id: customer,
                order_total: total,
                subtotal: cents(&payload["subTotal"]),
                discount_total: None,
                crm_order_id: Some(id.to_owned()),
                order_number: payload["orderNumber"]
                    .as_i64()
                    .map(|n| n.to_string())
                    .or(payload["orderNumber"].as_str().map(str::to_owned)),
                ordered_at: payload["orderSubmittedDate"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc)),
                is_club_shipment: payload["orderType"].as_str() == Some("Club"),
                line_items,
            };
            let key = format!("commerce7:order:{id}");
            Some(customers::record_order(conn, scope, order, Some(&key)).await?)
        }
        _ => None,
    };
    Ok(applied.map_or(Applied::Ignored, Applied::Applied))
}

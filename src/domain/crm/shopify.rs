//! Shopify's Admin GraphQL API (version [`API_VERSION`]), spoken as Shopify documents it:
//! `POST https://{shop}/admin/api/{version}/graphql.json` with the shop's access token in
//! `X-Shopify-Access-Token`. Seed 004's four provider methods: `findCustomerByEmail`
//! (`customers(query: "email:…")`), `upsertCustomer` (`customerUpdate` or
//! `customerCreate`), and `addCustomerToDiscount` / `removeCustomerFromDiscount` as the
//! stage's customer tag (`tagsAdd` / `tagsRemove`: the merchant's discount is for the
//! customer segment `customer_tags CONTAINS '<tag>'`).
//!
//! Rate limits: HTTP 429 waits its `Retry-After`; the cost-based throttle (`THROTTLED`,
//! `extensions.cost.throttleStatus`) waits until the bucket holds the query's cost again,
//! and a call whose bucket is known to be short waits before it is sent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{self, kept};
use super::ops::{SyncCustomer, SyncTarget};
use super::provider::{Connector, CrmError};

pub const API_VERSION: &str = "2025-01";

/// The longest a call waits for the shop's bucket before giving its turn back to the
/// queue (`RateLimited`).
const MAX_INLINE_WAIT: Duration = Duration::from_secs(5);

pub struct Shopify {
    /// `https://{shop}` in production; `{shop}` stands for the shop's domain.
    base_url: String,
    http: reqwest::Client,
    /// Per shop: when its cost bucket holds enough for another call.
    refilled_at: Mutex<HashMap<String, Instant>>,
}

const FIND: &str = "query FindCustomer($query: String!) { customers(first: 1, query: $query) { nodes { id email } } }";
const CREATE: &str = "mutation CreateCustomer($input: CustomerInput!) { customerCreate(input: $input) { customer { id } userErrors { field message } } }";
const UPDATE: &str = "mutation UpdateCustomer($input: CustomerInput!) { customerUpdate(input: $input) { customer { id } userErrors { field message } } }";
const TAGS_ADD: &str = "mutation AddTags($id: ID!, $tags: [String!]!) { tagsAdd(id: $id, tags: $tags) { node { id } userErrors { field message } } }";
const TAGS_REMOVE: &str = "mutation RemoveTags($id: ID!, $tags: [String!]!) { tagsRemove(id: $id, tags: $tags) { node { id } userErrors { field message } } }";

/// `club-` and a stage's name in lower-case letters, digits and dashes.
pub fn stage_slug(name: &str) -> String {
    let mut slug = String::from("club");
    for word in name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        slug.push('-');
        slug.extend(word.chars().flat_map(char::to_lowercase));
    }
    slug.chars().take(100).collect()
}

/// The search query finding a customer by email (quoted: Shopify's search syntax).
pub fn email_query(email: &str) -> String {
    let escaped = email.replace('\\', "\\\\").replace('"', "\\\"");
    format!("email:\"{escaped}\"")
}

/// The customer's fields Shopify is given: email, names, and the phone when it is in
/// E.164 form (Shopify refuses others).
fn customer_input(customer: &SyncCustomer) -> Value {
    let (first, last) = customer.first_and_last_name();
    let mut input = json!({ "email": customer.email });
    if let Some(first) = first {
        input["firstName"] = json!(first);
    }
    if let Some(last) = last {
        input["lastName"] = json!(last);
    }
    if let Some(phone) = customer.e164_phone() {
        input["phone"] = json!(phone);
    }
    input
}

/// A `userErrors` list as one refusal, if it has any.
fn user_errors(payload: &Value, what: &str) -> Result<(), CrmError> {
    let errors = payload["userErrors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if errors.is_empty() {
        return Ok(());
    }
    let messages: Vec<&str> = errors
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    Err(CrmError::Refused(kept(&format!(
        "Shopify refused {what}: {}",
        messages.join("; ")
    ))))
}

/// How long until the bucket of `throttle` (`extensions.cost.throttleStatus`) holds `cost`.
fn refill_time(throttle: &Value, cost: f64) -> Option<Duration> {
    let available = throttle["currentlyAvailable"].as_f64()?;
    let rate = throttle["restoreRate"].as_f64().filter(|r| *r > 0.0)?;
    (available < cost).then(|| Duration::from_secs_f64(((cost - available) / rate).min(3600.0)))
}

impl Shopify {
    pub fn new(base_url: String) -> Shopify {
        Shopify {
            base_url,
            http: http::client(),
            refilled_at: Mutex::new(HashMap::new()),
        }
    }

    /// `path` on the shop's Admin API origin.
    fn url(&self, shop: &str, path: &str) -> String {
        format!(
            "{}{path}",
            self.base_url.replace("{shop}", shop).trim_end_matches('/')
        )
    }

    /// Waits for the shop's bucket when it is known to be short (at most
    /// [`MAX_INLINE_WAIT`]; longer, the job waits in the queue instead).
    async fn wait_for_bucket(&self, shop: &str) -> Result<(), CrmError> {
        let due = self
            .refilled_at
            .lock()
            .expect("bucket map")
            .get(shop)
            .copied();
        if let Some(wait) = due.and_then(|d| d.checked_duration_since(Instant::now())) {
            if wait > MAX_INLINE_WAIT {
                return Err(CrmError::RateLimited { retry_after: wait });
            }
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    fn note_bucket(&self, shop: &str, wait: Option<Duration>) {
        let mut buckets = self.refilled_at.lock().expect("bucket map");
        match wait {
            Some(wait) => {
                buckets.insert(shop.to_owned(), Instant::now() + wait);
            }
            None => {
                buckets.remove(shop);
            }
        }
    }

    /// One GraphQL call; its `data`, or why not.
    async fn call(
        &self,
        target: &SyncTarget,
        query: &str,
        variables: Value,
    ) -> Result<Value, CrmError> {
        self.wait_for_bucket(&target.shop).await?;
        let request = self
            .http
            .post(self.url(
                &target.shop,
                &format!("/admin/api/{API_VERSION}/graphql.json"),
            ))
            .header("X-Shopify-Access-Token", target.credential("accessToken"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(json!({ "query": query, "variables": variables }).to_string());
        let body = match http::send("Shopify", request).await {
            Err(CrmError::RateLimited { retry_after }) => {
                self.note_bucket(&target.shop, Some(retry_after));
                return Err(CrmError::RateLimited { retry_after });
            }
            other => other?,
        };
        let cost = &body["extensions"]["cost"];
        let requested = cost["requestedQueryCost"].as_f64().unwrap_or(10.0);
        let wait = refill_time(&cost["throttleStatus"], requested);
        self.note_bucket(&target.shop, wait);
        if let Some(errors) = body["errors"].as_array().filter(|e| !e.is_empty()) {
            let throttled = errors
                .iter()
                .any(|e| e["extensions"]["code"].as_str() == Some("THROTTLED"));
            if throttled {
                let retry_after = wait.unwrap_or(Duration::from_secs(1));
                return Err(CrmError::RateLimited { retry_after });
            }
            let messages: Vec<&str> = errors
                .iter()
                .filter_map(|e| e["message"].as_str())
                .collect();
            return Err(CrmError::Refused(kept(&format!(
                "Shopify refused the request: {}",
                messages.join("; ")
            ))));
        }
        match body.get("data") {
            Some(data) if data.is_object() => Ok(data.clone()),
            _ => Err(CrmError::Failed("Shopify answered without data".to_owned())),
        }
    }

    /// Exchanges a session's refresh token for new tokens at Shopify's token endpoint
    /// (`POST https://{shop}/admin/oauth/access_token`, `grant_type=refresh_token`); Shopify
    /// replaces the refresh token at each use.
    pub async fn refresh(
        &self,
        session: &super::ops::DueSession,
    ) -> Result<super::ops::SessionTokens, CrmError> {
        let request = self
            .http
            .post(self.url(&session.shop, "/admin/oauth/access_token"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(
                json!({
                    "client_id": session.client_id,
                    "client_secret": session.client_secret,
                    "grant_type": "refresh_token",
                    "refresh_token": session.refresh_token,
                })
                .to_string(),
            );
        let answer = http::send("Shopify", request).await?;
        let text = |name: &str| answer[name].as_str().map(str::to_owned);
        match (text("access_token"), text("refresh_token")) {
            (Some(access_token), Some(refresh_token)) => Ok(super::ops::SessionTokens {
                access_token,
                refresh_token,
                expires_in: answer["expires_in"]
                    .as_i64()
                    .unwrap_or(3600)
                    .clamp(60, 31_536_000),
                refresh_token_expires_in: answer["refresh_token_expires_in"].as_i64(),
                scope: text("scope"),
            }),
            _ => Err(CrmError::Failed(
                "Shopify's token endpoint answered no tokens".into(),
            )),
        }
    }

    async fn tags(
        &self,
        target: &SyncTarget,
        customer_id: &str,
        tag: &str,
        add: bool,
    ) -> Result<(), CrmError> {
        let (query, field) = match add {
            true => (TAGS_ADD, "tagsAdd"),
            false => (TAGS_REMOVE, "tagsRemove"),
        };
        let data = self
            .call(target, query, json!({ "id": customer_id, "tags": [tag] }))
            .await?;
        user_errors(&data[field], "the tag")
    }
}

#[async_trait::async_trait]
impl Connector for Shopify {
    /// Shopify's tags are free text: `club-` and the stage's name as a slug (the merchant's
    /// discount segment is `customer_tags CONTAINS 'club-gold'`).
    async fn stage_tag(&self, target: &SyncTarget) -> Result<String, CrmError> {
        Ok(stage_slug(&target.stage_name))
    }

    fn is_customer_id(&self, id: &str) -> bool {
        id.starts_with("gid://shopify/Customer/")
    }

    /// `findCustomerByEmail`: the customer's id, if Shopify has one with this email.
    async fn find_customer_by_email(
        &self,
        target: &SyncTarget,
        email: &str,
    ) -> Result<Option<String>, CrmError> {
        let data = self
            .call(target, FIND, json!({ "query": email_query(email) }))
            .await?;
        Ok(data["customers"]["nodes"]
            .as_array()
            .and_then(|nodes| nodes.first())
            .and_then(|node| node["id"].as_str())
            .map(str::to_owned))
    }

    /// `upsertCustomer`: updates the customer Shopify has with this email, else creates
    /// them; their id.
    async fn upsert_customer(&self, target: &SyncTarget) -> Result<String, CrmError> {
        let customer = &target.customer;
        let mut input = customer_input(customer);
        let (query, field) = match self.find_customer_by_email(target, &customer.email).await? {
            Some(id) => {
                input["id"] = json!(id);
                (UPDATE, "customerUpdate")
            }
            None => (CREATE, "customerCreate"),
        };
        let data = self.call(target, query, json!({ "input": input })).await?;
        user_errors(&data[field], "the customer")?;
        data[field]["customer"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| CrmError::Failed(format!("Shopify's {field} answered no customer")))
    }

    /// `addCustomerToDiscount`: the stage's tag on the customer.
    async fn add_customer_to_discount(
        &self,
        target: &SyncTarget,
        customer_id: &str,
        tag: &str,
    ) -> Result<(), CrmError> {
        self.tags(target, customer_id, tag, true).await
    }

    /// `removeCustomerFromDiscount`: the stage's tag off the customer.
    async fn remove_customer_from_discount(
        &self,
        target: &SyncTarget,
        customer_id: &str,
        tag: &str,
    ) -> Result<(), CrmError> {
        self.tags(target, customer_id, tag, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_emails_and_buckets_are_read_as_shopify_means_them() {
        let named = |name: &str| SyncCustomer {
            email: "ana@example.com".into(),
            name: Some(name.into()),
            phone: None,
            crm_customer_id: None,
        };
        assert_eq!(
            named("Ana Maria Souza").first_and_last_name(),
            (Some("Ana".into()), Some("Maria Souza".into()))
        );
        assert_eq!(named("  ").first_and_last_name(), (None, None));
        assert_eq!(email_query(r#"a"b\c@x.com"#), r#"email:"a\"b\\c@x.com""#);
        let throttle = json!({ "currentlyAvailable": 40.0, "restoreRate": 50.0 });
        assert_eq!(refill_time(&throttle, 140.0), Some(Duration::from_secs(2)));
        assert_eq!(refill_time(&throttle, 10.0), None);
        assert_eq!(refill_time(&json!({}), 10.0), None);
    }
}

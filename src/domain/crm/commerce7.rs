//! Commerce7's REST API (`https://api.commerce7.com/v1`), as Commerce7 documents it: basic
//! authentication with the app's id and secret, the winery's tenant in a `tenant` header,
//! JSON bodies. Seed 004's four provider methods: `findCustomerByEmail` (`GET /customer?q=`
//! paged by `cursor`, matched on the customer's `emails`), `upsertCustomer` (`PUT
//! /customer/{id}` or `POST /customer`), and `addCustomerToDiscount` /
//! `removeCustomerFromDiscount` as the stage's customer tag (`POST /tag-x-object/customer`,
//! `DELETE /tag-x-object/customer/{tagId}/{customerId}`; the winery's discount is for the
//! customers with that tag). Adding a tag twice lists it twice in Commerce7, so the
//! customer's tags are read first and a tag already there is not added again.

use base64::Engine;
use serde_json::{json, Value};

use super::http;
use super::ops::{SyncCustomer, SyncTarget};
use super::provider::{Connector, CrmError};

/// The most pages of search results read while looking for one email.
const MAX_PAGES: usize = 20;

pub struct Commerce7 {
    base_url: String,
    http: reqwest::Client,
}

/// The customer's fields Commerce7 is given: names, the email, the phone in E.164.
fn customer_body(customer: &SyncCustomer, with_email: bool) -> Value {
    let (first, last) = customer.first_and_last_name();
    let mut body = json!({});
    if let Some(first) = first {
        body["firstName"] = json!(first);
    }
    if let Some(last) = last {
        body["lastName"] = json!(last);
    }
    if with_email {
        body["emails"] = json!([{ "email": customer.email }]);
        if let Some(phone) = customer.e164_phone() {
            body["phones"] = json!([{ "phone": phone }]);
        }
    }
    body
}

/// Whether a Commerce7 customer has `email` among its emails (case aside).
fn has_email(customer: &Value, email: &str) -> bool {
    customer["emails"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["email"].as_str())
        .any(|e| e.eq_ignore_ascii_case(email))
}

impl Commerce7 {
    pub fn new(base_url: String) -> Commerce7 {
        Commerce7 {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http: http::client(),
        }
    }

    fn request(
        &self,
        target: &SyncTarget,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let credentials = format!(
            "{}:{}",
            target.credential("appId"),
            target.credential("appSecret")
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(credentials);
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .header("Authorization", format!("Basic {basic}"))
            .header("tenant", &target.shop)
            .header("Accept", "application/json")
    }

    async fn call(
        &self,
        target: &SyncTarget,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CrmError> {
        let mut request = self.request(target, method, path);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        http::send("Commerce7", request).await
    }

    /// Whether the customer has the tag now (`GET /customer/{id}`).
    async fn has_tag(
        &self,
        target: &SyncTarget,
        customer_id: &str,
        tag: &str,
    ) -> Result<bool, CrmError> {
        let customer = self
            .call(
                target,
                reqwest::Method::GET,
                &format!("/customer/{customer_id}"),
                None,
            )
            .await?;
        Ok(customer["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["id"].as_str() == Some(tag)))
    }
}

#[async_trait::async_trait]
impl Connector for Commerce7 {
    /// The customer tag titled `Club <stage>`: found (`GET /tag/customer?q=`), else made
    /// (`POST /tag/customer`, a manual tag); its id.
    async fn stage_tag(&self, target: &SyncTarget) -> Result<String, CrmError> {
        let title = format!("Club {}", target.stage_name);
        let query = form_urlencoded(&[("q", &title)]);
        let found = self
            .call(
                target,
                reqwest::Method::GET,
                &format!("/tag/customer?{query}"),
                None,
            )
            .await?;
        let existing = found["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["title"].as_str() == Some(title.as_str()))
            .and_then(|t| t["id"].as_str());
        if let Some(id) = existing {
            return Ok(id.to_owned());
        }
        let body = json!({ "title": title, "type": "Manual" });
        let made = self
            .call(target, reqwest::Method::POST, "/tag/customer", Some(body))
            .await?;
        made["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| CrmError::Failed("Commerce7 answered no tag id".into()))
    }

    fn is_customer_id(&self, id: &str) -> bool {
        uuid::Uuid::parse_str(id).is_ok()
    }

    /// `findCustomerByEmail`: the id of the customer with this email, if Commerce7 has one
    /// (the search pages followed by their `cursor`).
    async fn find_customer_by_email(
        &self,
        target: &SyncTarget,
        email: &str,
    ) -> Result<Option<String>, CrmError> {
        let mut cursor = "start".to_owned();
        for _ in 0..MAX_PAGES {
            let query = form_urlencoded(&[("q", email), ("cursor", &cursor)]);
            let page = self
                .call(
                    target,
                    reqwest::Method::GET,
                    &format!("/customer?{query}"),
                    None,
                )
                .await?;
            let found = page["customers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| has_email(c, email))
                .and_then(|c| c["id"].as_str());
            if let Some(id) = found {
                return Ok(Some(id.to_owned()));
            }
            match page["cursor"].as_str().filter(|c| !c.is_empty()) {
                Some(next) if next != cursor => cursor = next.to_owned(),
                _ => return Ok(None),
            }
        }
        Err(CrmError::Refused(format!(
            "Commerce7's search for the customer's email ran past {MAX_PAGES} pages"
        )))
    }

    /// `upsertCustomer`: updates the customer Commerce7 has with this email, else creates
    /// them; their id.
    async fn upsert_customer(&self, target: &SyncTarget) -> Result<String, CrmError> {
        let customer = &target.customer;
        let answer = match self.find_customer_by_email(target, &customer.email).await? {
            Some(id) => {
                let path = format!("/customer/{id}");
                let body = customer_body(customer, false);
                self.call(target, reqwest::Method::PUT, &path, Some(body))
                    .await?
            }
            None => {
                let body = customer_body(customer, true);
                self.call(target, reqwest::Method::POST, "/customer", Some(body))
                    .await?
            }
        };
        answer["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| CrmError::Failed("Commerce7 answered no customer id".into()))
    }

    /// `addCustomerToDiscount`: the stage's tag on the customer, once.
    async fn add_customer_to_discount(
        &self,
        target: &SyncTarget,
        customer_id: &str,
        tag: &str,
    ) -> Result<(), CrmError> {
        if self.has_tag(target, customer_id, tag).await? {
            return Ok(());
        }
        let body = json!({ "objectId": customer_id, "tagId": tag });
        self.call(
            target,
            reqwest::Method::POST,
            "/tag-x-object/customer",
            Some(body),
        )
        .await
        .map(|_| ())
    }

    /// `removeCustomerFromDiscount`: the stage's tag off the customer.
    async fn remove_customer_from_discount(
        &self,
        target: &SyncTarget,
        customer_id: &str,
        tag: &str,
    ) -> Result<(), CrmError> {
        if !self.has_tag(target, customer_id, tag).await? {
            return Ok(());
        }
        let path = format!("/tag-x-object/customer/{tag}/{customer_id}");
        self.call(target, reqwest::Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }
}

/// `application/x-www-form-urlencoded` pairs, for a query string.
fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_and_emails_are_read_as_commerce7_means_them() {
        assert_eq!(
            form_urlencoded(&[("q", "a+b@x.com"), ("cursor", "start")]),
            "q=a%2Bb%40x.com&cursor=start"
        );
        let customer = json!({ "emails": [{ "email": "Ana@Example.com" }] });
        assert!(has_email(&customer, "ana@example.com"));
        assert!(!has_email(&customer, "ana@example.org"));
    }
}

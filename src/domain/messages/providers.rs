//! The providers a message leaves through, each spoken to in its own documented protocol:
//! SMTP (lettre: TLS, STARTTLS, or plain for a local relay), SendGrid's v3 Mail Send,
//! Twilio's Messages resource (SMS and WhatsApp), and Resend's Emails API. Where they are
//! is the operator's setting (`--smtp-url`, `--sendgrid-base-url`, `--twilio-base-url`,
//! `--resend-base-url`), never a tenant's; a tenant's configuration brings only its
//! credentials and sender. The `local` provider delivers into the database only.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::comms::model::{Channel, ChannelProvider};

/// Where the providers are: operator settings.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The SMTP relay, e.g. `smtps://user:pass@smtp.example.com` (TLS),
    /// `smtp://user:pass@smtp.example.com:587?tls=required` (STARTTLS) or
    /// `smtp://127.0.0.1:2525` (plain, for a local relay).
    pub smtp_url: Option<String>,
    pub sendgrid_base_url: String,
    pub twilio_base_url: String,
    pub resend_base_url: String,
    /// How providers reach this server (`https://api.example.com`), for the status
    /// callbacks a message names (Twilio's `StatusCallback`).
    pub public_url: Option<String>,
    /// Messages of a channel the tenant has not configured are delivered into the database
    /// only (`local`), rather than failed as `not_configured`.
    pub local_delivery: bool,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        ProviderSettings {
            smtp_url: None,
            sendgrid_base_url: "https://api.sendgrid.com".into(),
            twilio_base_url: "https://api.twilio.com".into(),
            resend_base_url: "https://api.resend.com".into(),
            public_url: None,
            local_delivery: false,
        }
    }
}

/// How a message leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Local,
    Smtp,
    Sendgrid,
    Twilio,
    Resend,
}

impl Route {
    /// The route of a configured provider on `channel`, if this server can send through
    /// it.
    pub fn of(provider: ChannelProvider, channel: Channel) -> Option<Route> {
        match (provider, channel) {
            (ChannelProvider::Smtp, Channel::Email) => Some(Route::Smtp),
            (ChannelProvider::Sendgrid, Channel::Email) => Some(Route::Sendgrid),
            (ChannelProvider::Resend, Channel::Email) => Some(Route::Resend),
            (ChannelProvider::Twilio, Channel::Sms | Channel::Whatsapp) => Some(Route::Twilio),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Route::Local => "local",
            Route::Smtp => "smtp",
            Route::Sendgrid => "sendgrid",
            Route::Twilio => "twilio",
            Route::Resend => "resend",
        }
    }

    /// Whether a call whose outcome is unknown may be repeated: the provider recognises
    /// the repeat by its idempotency key (Resend), or nothing leaves at all (local).
    pub fn repeatable(self) -> bool {
        matches!(self, Route::Local | Route::Resend)
    }
}

/// One message, rendered, as a provider receives it.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub message_id: Uuid,
    pub channel: Channel,
    pub to: String,
    pub from_address: Option<String>,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    /// Where the provider reports the message's status (Twilio), if known.
    pub status_callback: Option<String>,
}

/// What a provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted, under the provider's id.
    Sent { provider_message_id: String },
    /// Not accepted this time (rate limit, provider unavailable, connection refused):
    /// safe to try again later.
    Retry { reason: String },
    /// Refused for good (bad credentials, invalid recipient, validation), with the
    /// provider's message.
    Failed { code: &'static str, reason: String },
    /// The provider may or may not have accepted it (the answer was lost).
    Unknown { reason: String },
}

/// The clients to every provider, built once.
pub struct Providers {
    pub settings: ProviderSettings,
    http: reqwest::Client,
    smtp: Option<Result<AsyncSmtpTransport<Tokio1Executor>, String>>,
}

impl Providers {
    pub fn new(settings: ProviderSettings) -> Providers {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        let smtp = settings.smtp_url.as_deref().map(|url| {
            AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map(|b| {
                    b.timeout(Some(Duration::from_secs(30)))
                        .pool_config(PoolConfig::new().max_size(16))
                        .build()
                })
                .map_err(|e| format!("unusable SMTP URL: {e}"))
        });
        Providers {
            settings,
            http,
            smtp,
        }
    }

    /// Sends `envelope` through `route` with the tenant's `credentials` (a JSON object).
    pub async fn send(&self, route: Route, credentials: &Value, envelope: &Envelope) -> Outcome {
        match route {
            Route::Local => Outcome::Sent {
                provider_message_id: format!("local-{}", envelope.message_id),
            },
            Route::Smtp => self.smtp(envelope).await,
            Route::Sendgrid => self.sendgrid(credentials, envelope).await,
            Route::Twilio => self.twilio(credentials, envelope).await,
            Route::Resend => self.resend(credentials, envelope).await,
        }
    }

    async fn smtp(&self, envelope: &Envelope) -> Outcome {
        let transport = match &self.smtp {
            None => return not_configured("this server has no SMTP relay (--smtp-url)"),
            Some(Err(e)) => return not_configured(e),
            Some(Ok(t)) => t,
        };
        let Some(from) = &envelope.from_address else {
            return not_configured("the channel has no sender address");
        };
        let from = match mailbox(envelope.from_name.as_deref(), from) {
            Some(m) => m,
            None => return not_configured("the channel's sender address is not valid"),
        };
        let Some(to) = mailbox(None, &envelope.to) else {
            return invalid_recipient();
        };
        let message_id = format!("<{}@growthgraph>", envelope.message_id);
        let builder = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(envelope.subject.clone().unwrap_or_default())
            .message_id(Some(message_id.clone()));
        let text = envelope.text.clone().unwrap_or_default();
        let email = match &envelope.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, html.clone())),
            None => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            ),
        };
        let email = match email {
            Ok(e) => e,
            Err(e) => {
                return Outcome::Failed {
                    code: "invalid_message",
                    reason: e.to_string(),
                }
            }
        };
        match transport.send(email).await {
            Ok(_) => Outcome::Sent {
                provider_message_id: message_id,
            },
            Err(e) if e.is_permanent() => Outcome::Failed {
                code: "rejected",
                reason: clip(&e.to_string()),
            },
            Err(e) if e.is_timeout() => Outcome::Unknown {
                reason: clip(&e.to_string()),
            },
            Err(e) => Outcome::Retry {
                reason: clip(&e.to_string()),
            },
        }
    }

    async fn sendgrid(&self, credentials: &Value, envelope: &Envelope) -> Outcome {
        let Some(key) = credentials["apiKey"].as_str() else {
            return not_configured("the channel's credentials have no apiKey");
        };
        let Some(from) = &envelope.from_address else {
            return not_configured("the channel has no sender address");
        };
        let mut sender = json!({ "email": from });
        if let Some(name) = &envelope.from_name {
            sender["name"] = json!(name);
        }
        // SendGrid wants text/plain before text/html.
        let mut content = Vec::new();
        if let Some(text) = &envelope.text {
            content.push(json!({ "type": "text/plain", "value": text }));
        }
        if let Some(html) = &envelope.html {
            content.push(json!({ "type": "text/html", "value": html }));
        }
        let body = json!({
            "personalizations": [{ "to": [{ "email": envelope.to }] }],
            "from": sender,
            "subject": envelope.subject.clone().unwrap_or_default(),
            "content": content,
            // Echoed in every event of the Event Webhook.
            "custom_args": { "growthgraph_message_id": envelope.message_id.to_string() },
        });
        let url = format!(
            "{}/v3/mail/send",
            self.settings.sendgrid_base_url.trim_end_matches('/')
        );
        let request = self.http.post(url).bearer_auth(key).json(&body);
        answer(request, |headers, _| {
            headers
                .get("x-message-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| Some(envelope.message_id.to_string()))
        })
        .await
    }

    async fn twilio(&self, credentials: &Value, envelope: &Envelope) -> Outcome {
        let (Some(account), Some(token)) = (
            credentials["accountSid"].as_str(),
            credentials["authToken"].as_str(),
        ) else {
            return not_configured("the channel's credentials need accountSid and authToken");
        };
        let Some(from) = &envelope.from_address else {
            return not_configured("the channel has no sender number");
        };
        let whatsapp = |number: &str| match envelope.channel {
            Channel::Whatsapp if !number.starts_with("whatsapp:") => format!("whatsapp:{number}"),
            _ => number.to_owned(),
        };
        let mut form = vec![
            ("To", whatsapp(&envelope.to)),
            ("From", whatsapp(from)),
            ("Body", envelope.text.clone().unwrap_or_default()),
        ];
        if let Some(callback) = &envelope.status_callback {
            form.push(("StatusCallback", callback.clone()));
        }
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.settings.twilio_base_url.trim_end_matches('/'),
            utf8_percent(account)
        );
        let request = self
            .http
            .post(url)
            .basic_auth(account, Some(token))
            .form(&form);
        answer(request, |_, body| body["sid"].as_str().map(str::to_owned)).await
    }

    async fn resend(&self, credentials: &Value, envelope: &Envelope) -> Outcome {
        let Some(key) = credentials["apiKey"].as_str() else {
            return not_configured("the channel's credentials have no apiKey");
        };
        let Some(from) = &envelope.from_address else {
            return not_configured("the channel has no sender address");
        };
        let from = match &envelope.from_name {
            Some(name) => format!("{name} <{from}>"),
            None => from.clone(),
        };
        let mut body = json!({
            "from": from,
            "to": [envelope.to],
            "subject": envelope.subject.clone().unwrap_or_default(),
            "tags": [{ "name": "growthgraph_message_id", "value": envelope.message_id.to_string() }],
        });
        if let Some(text) = &envelope.text {
            body["text"] = json!(text);
        }
        if let Some(html) = &envelope.html {
            body["html"] = json!(html);
        }
        let url = format!(
            "{}/emails",
            self.settings.resend_base_url.trim_end_matches('/')
        );
        let request = self
            .http
            .post(url)
            .bearer_auth(key)
            // Resend answers a repeat of this key with the first answer, sending nothing.
            .header("Idempotency-Key", envelope.message_id.to_string())
            .json(&body);
        answer(request, |_, body| body["id"].as_str().map(str::to_owned)).await
    }
}

fn not_configured(reason: &str) -> Outcome {
    Outcome::Failed {
        code: "not_configured",
        reason: reason.to_owned(),
    }
}

fn invalid_recipient() -> Outcome {
    Outcome::Failed {
        code: "invalid_recipient",
        reason: "not a deliverable address".into(),
    }
}

fn mailbox(name: Option<&str>, address: &str) -> Option<Mailbox> {
    let address = address.parse().ok()?;
    Some(Mailbox::new(name.map(str::to_owned), address))
}

fn utf8_percent(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// At most 500 characters of a provider's message (kept for the admin).
fn clip(text: &str) -> String {
    text.chars().take(500).collect()
}

/// Sends an HTTP provider request and classifies the answer: 2xx accepted (`id` finds the
/// provider's message id in the headers or JSON body), 408/409/429/5xx and refused
/// connections retried, other 4xx refused for good with the provider's message, a lost
/// answer unknown.
async fn answer(
    request: reqwest::RequestBuilder,
    id: impl FnOnce(&reqwest::header::HeaderMap, &Value) -> Option<String>,
) -> Outcome {
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() || e.is_builder() => {
            return Outcome::Retry {
                reason: clip(&format!("cannot reach the provider: {e}")),
            }
        }
        Err(e) => {
            return Outcome::Unknown {
                reason: clip(&format!("no answer from the provider: {e}")),
            }
        }
    };
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return match id(&headers, &body) {
            Some(id) => Outcome::Sent {
                provider_message_id: id,
            },
            None => Outcome::Unknown {
                reason: format!("the provider answered {status} without a message id"),
            },
        };
    }
    let message = provider_message(&body).unwrap_or_else(|| clip(&text));
    let reason = clip(&format!("{status}: {message}"));
    match status.as_u16() {
        408 | 409 | 429 | 500..=599 => Outcome::Retry { reason },
        401 | 403 => Outcome::Failed {
            code: "unauthorized",
            reason,
        },
        _ => Outcome::Failed {
            code: "rejected",
            reason,
        },
    }
}

/// The message of a provider's error body: SendGrid `errors[].message`, Twilio and Resend
/// `message`.
fn provider_message(body: &Value) -> Option<String> {
    if let Some(errors) = body["errors"].as_array() {
        let messages: Vec<&str> = errors
            .iter()
            .filter_map(|e| e["message"].as_str())
            .collect();
        if !messages.is_empty() {
            return Some(clip(&messages.join("; ")));
        }
    }
    body["message"].as_str().map(clip)
}

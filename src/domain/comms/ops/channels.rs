//! The channels' configurations: listed, and written with their sealed credentials.

#[allow(unused_imports)]
use super::*;

/// Every channel configuration of the tenant (a handful), by channel then provider.
pub async fn channels(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
) -> QueryResult<Vec<ChannelConfiguration>> {
    use channel_configurations as c;
    c::table
        .filter(c::tenant_id.eq(scope.id()))
        .select(ChannelConfiguration::as_select())
        .order((c::channel_type, c::provider))
        .load(conn)
        .await
}

/// At most this much public configuration or credentials (serialised JSON).
const MAX_CONFIG_BYTES: usize = 8 * 1024;

/// Credentials for [`configure_channel`]: kept as they are, removed, or replaced.
#[derive(Clone)]
pub enum Credentials {
    Keep,
    Remove,
    /// A JSON object, sealed with the server's key before it is stored.
    Store(serde_json::Value),
}

impl std::fmt::Debug for Credentials {
    /// Never the credentials themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::Keep => "Keep",
            Credentials::Remove => "Remove",
            Credentials::Store(_) => "Store(…)",
        })
    }
}

/// What sealed credentials are bound to: the tenant, the channel and the provider (a
/// sealed value copied to another row does not open there).
pub fn credentials_context(tenant: Uuid, channel: Channel, provider: ChannelProvider) -> String {
    format!(
        "channel_configurations/{tenant}/{}/{}",
        channel.as_str(),
        provider.as_str()
    )
}

/// A configuration as `configureChannel` answers it: with its status hook token when one
/// was made (the first time, or on request), shown this once.
#[derive(Debug)]
pub struct Configured {
    pub configuration: ChannelConfiguration,
    pub hook_token: Option<String>,
}

/// Creates the tenant's configuration of `channel` with `provider`, or changes what
/// `fields` and `credentials` give. Credentials are sealed with `key` (refused when the
/// server has none) and never returned; `configured` says whether some are stored.
/// Concurrent first calls create one configuration. A configuration gets a status hook
/// token (`POST /hooks/{provider}/{token}`) when it has none or `rotate_hook_token` asks.
#[allow(clippy::too_many_arguments)]
pub async fn configure_channel(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    channel: Channel,
    provider: ChannelProvider,
    mut fields: ChannelFields,
    credentials: Credentials,
    rotate_hook_token: bool,
    key: Option<&SecretKey>,
) -> OpResult<Configured> {
    use channel_configurations as c;
    check_channel(channel, provider, &fields)?;
    match credentials {
        Credentials::Keep => {}
        Credentials::Remove => {
            fields.config_encrypted = Some(None);
            fields.configured = Some(false);
        }
        Credentials::Store(value) => {
            check_json_object("credentials", &value, MAX_CONFIG_BYTES)?;
            let Some(key) = key else {
                return Err(user_error(
                    UserErrorCode::Invalid,
                    &["input", "credentials"],
                    "this server has no secret key (GROWTHGRAPH_SECRET_KEY): credentials cannot be stored",
                ));
            };
            let context = credentials_context(scope.id(), channel, provider);
            fields.config_encrypted = Some(Some(key.seal(&context, value.to_string().as_bytes())));
            fields.configured = Some(true);
        }
    }
    let config = diesel::insert_into(c::table)
        .values((
            c::tenant_id.eq(scope.id()),
            c::channel_type.eq(channel),
            c::provider.eq(provider.as_str()),
            fields.clone(),
        ))
        .on_conflict((c::tenant_id, c::channel_type, c::provider))
        .do_update()
        // `updated_at` (stamped by the table's trigger anyway) keeps the change non-empty
        // when only the identity is given.
        .set((fields, c::updated_at.eq(diesel::dsl::now)))
        .returning(ChannelConfiguration::as_returning())
        .get_result(conn)
        .await?;
    events::record(
        conn,
        scope,
        "channel.configured",
        config.id,
        json!({
            "channel": channel.as_str(),
            "provider": provider.as_str(),
            "enabled": config.enabled,
            "configured": config.configured,
        }),
    )
    .await?;
    let has_token: bool = c::table
        .filter(c::tenant_id.eq(scope.id()))
        .filter(c::id.eq(config.id))
        .select(c::hook_token_hash.is_not_null())
        .first(conn)
        .await?;
    let mut hook_token = None;
    if rotate_hook_token || !has_token {
        let token = crate::auth::generate_secret("ghk_");
        let sealed = key.map(|key| {
            let context = crate::domain::messages::ops::hook_token_context(scope.id(), config.id);
            key.seal(&context, token.as_bytes())
        });
        diesel::update(
            c::table
                .filter(c::tenant_id.eq(scope.id()))
                .filter(c::id.eq(config.id)),
        )
        .set((
            c::hook_token_hash.eq(crate::auth::hash_key(&token)),
            c::hook_token_sealed.eq(sealed),
        ))
        .execute(conn)
        .await?;
        hook_token = Some(token);
    }
    Ok(Configured {
        configuration: config,
        hook_token,
    })
}

fn check_channel(
    channel: Channel,
    provider: ChannelProvider,
    fields: &ChannelFields,
) -> OpResult<()> {
    let invalid = |field: &str, message: &str| {
        Err(user_error(
            UserErrorCode::Invalid,
            &["input", field],
            message,
        ))
    };
    if !provider.carries(channel) {
        return invalid("provider", "this provider does not carry this channel");
    }
    if let Some(config) = &fields.config_public {
        check_json_object("configPublic", config, MAX_CONFIG_BYTES)?;
    }
    if let Some(Some(assistant)) = &fields.assistant_id {
        if channel != Channel::Phone {
            return invalid("assistantId", "only phone channels have a voice assistant");
        }
        if assistant.is_empty() || assistant.chars().count() > 200 || assistant.contains('\0') {
            return invalid("assistantId", "assistantId is 1 to 200 characters");
        }
    }
    if let Some(Some(address)) = &fields.from_address {
        let fits = match channel {
            Channel::Email => valid_email(address),
            _ => !address.is_empty() && address.len() <= 254 && !address.contains('\0'),
        };
        if !fits {
            return invalid("fromAddress", "not a sender address for this channel");
        }
    }
    check_text(
        "fromName",
        fields.from_name.as_ref().and_then(|n| n.as_deref()),
        200,
    )?;
    Ok(())
}

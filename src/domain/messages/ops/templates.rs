//! Templates: checked when saved, rendered for a message or a preview.

#[allow(unused_imports)]
use super::*;

/// Inserts a template's `fields` into table module `t`, or updates the tenant's row `id`
/// (`NOT_FOUND` on `input.id` when it has none); returns the row as `$row`.
macro_rules! save_template {
    ($conn:expr, $scope:expr, $t:ident, $id:expr, $fields:expr, $row:ty) => {
        match $id {
            None => {
                diesel::insert_into($t::table)
                    .values(($t::tenant_id.eq($scope.id()), $fields))
                    .returning(<$row>::as_returning())
                    .get_result($conn)
                    .await?
            }
            Some(id) => diesel::update(
                $t::table
                    .filter($t::tenant_id.eq($scope.id()))
                    .filter($t::id.eq(id)),
            )
            .set($fields)
            .returning(<$row>::as_returning())
            .get_result($conn)
            .await
            .optional()?
            .ok_or_else(|| {
                user_error(
                    UserErrorCode::NotFound,
                    &["input", "id"],
                    "no such template",
                )
            })?,
        }
    };
}

pub(crate) const COMMUNICATION_FIELDS: Fields = Fields {
    subject: "subject",
    text: "textContent",
    html: "htmlContent",
};
pub(crate) const EMAIL_FIELDS: Fields = Fields {
    subject: "subject",
    text: "plainContent",
    html: "htmlContent",
};

pub(crate) fn declared(variables: &Value) -> Vec<String> {
    variables
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().or_else(|| n["name"].as_str()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl CommunicationTemplate {
    pub fn source(&self) -> (Vec<String>, [Option<&str>; 3]) {
        (
            declared(&self.variables),
            [
                self.subject.as_deref(),
                Some(self.text_content.as_str()),
                self.html_content.as_deref(),
            ],
        )
    }
}

impl EmailTemplate {
    pub fn source(&self) -> (Vec<String>, [Option<&str>; 3]) {
        (
            declared(&self.variables),
            [
                Some(self.subject.as_str()),
                self.plain_content.as_deref(),
                Some(self.html_content.as_str()),
            ],
        )
    }
}

pub(crate) fn check_source(
    parts: [Option<&str>; 3],
    variables: &[String],
    fields: Fields,
) -> OpResult<()> {
    let [subject, text, html] = parts;
    engine::check(
        &Source {
            subject,
            text,
            html,
            variables,
        },
        fields,
    )
    .map_err(OpError::User)
}

pub async fn communication_templates(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    channel: Option<Channel>,
    template_type: Option<TemplateType>,
) -> QueryResult<Vec<CommunicationTemplate>> {
    use communication_templates as t;
    let query = t::table
        .filter(t::tenant_id.eq(scope.id()))
        .select(CommunicationTemplate::as_select())
        .order((t::template_type, t::channel))
        .into_boxed()
        .filter_some(channel, |v| t::channel.eq(v))
        .filter_some(template_type, |v| t::template_type.eq(v));
    query.load(conn).await
}

pub async fn email_templates(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
) -> QueryResult<Vec<EmailTemplate>> {
    use email_templates as t;
    t::table
        .filter(t::tenant_id.eq(scope.id()))
        .select(EmailTemplate::as_select())
        .order((t::name, t::id))
        .load(conn)
        .await
}

/// Creates a club communication template, or replaces the one `id` names. Checked first:
/// syntax, declared variables, sizes; SMS and WhatsApp templates have no subject or HTML.
pub async fn save_communication_template(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Option<Uuid>,
    fields: CommunicationTemplateFields,
) -> OpResult<CommunicationTemplate> {
    use communication_templates as t;
    check_required_text("name", &fields.name, 200)?;
    if fields.channel == Channel::Phone {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "channel"],
            "templates are for email, SMS and WhatsApp",
        ));
    }
    if fields.channel != Channel::Email
        && (fields.subject.is_some() || fields.html_content.is_some())
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "htmlContent"],
            "only email templates have a subject and an HTML body",
        ));
    }
    let variables = declared(&fields.variables);
    check_source(
        [
            fields.subject.as_deref(),
            Some(&fields.text_content),
            fields.html_content.as_deref(),
        ],
        &variables,
        COMMUNICATION_FIELDS,
    )?;
    let saved = save_template!(conn, scope, t, id, fields, CommunicationTemplate);
    events::record(
        conn,
        scope,
        "template.saved",
        saved.id,
        json!({ "templateType": saved.template_type, "channel": saved.channel }),
    )
    .await?;
    Ok(saved)
}

/// Creates an outreach email template, or replaces the one `id` names (checked like
/// [`save_communication_template`]).
pub async fn save_email_template(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Option<Uuid>,
    fields: EmailTemplateFields,
) -> OpResult<EmailTemplate> {
    use email_templates as t;
    check_required_text("name", &fields.name, 200)?;
    check_text("description", fields.description.as_deref(), 2000)?;
    check_text("category", fields.category.as_deref(), 100)?;
    let variables = declared(&fields.variables);
    check_source(
        [
            Some(&fields.subject),
            fields.plain_content.as_deref(),
            Some(&fields.html_content),
        ],
        &variables,
        EMAIL_FIELDS,
    )?;
    let saved = save_template!(conn, scope, t, id, fields, EmailTemplate);
    events::record(
        conn,
        scope,
        "template.saved",
        saved.id,
        json!({ "kind": "email" }),
    )
    .await?;
    Ok(saved)
}

/// A template of either kind, as `deliver` and `previewTemplate` use it.
pub enum AnyTemplate {
    Communication(CommunicationTemplate),
    Email(EmailTemplate),
}

impl AnyTemplate {
    pub(crate) fn render(&self, variables: &Value) -> Result<Rendered, UserError> {
        let ((declared, [subject, text, html]), fields) = match self {
            AnyTemplate::Communication(t) => (t.source(), COMMUNICATION_FIELDS),
            AnyTemplate::Email(t) => (t.source(), EMAIL_FIELDS),
        };
        engine::render(
            &Source {
                subject,
                text,
                html,
                variables: &declared,
            },
            fields,
            variables,
        )
    }
}

/// The tenant's template `id`, of either kind (`field` names the input for the error).
pub async fn any_template(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    field: &[&str],
) -> OpResult<AnyTemplate> {
    let communication = communication_templates::table
        .filter(communication_templates::tenant_id.eq(scope.id()))
        .filter(communication_templates::id.eq(id))
        .select(CommunicationTemplate::as_select())
        .first(conn)
        .await
        .optional()?;
    if let Some(t) = communication {
        return Ok(AnyTemplate::Communication(t));
    }
    let email = email_templates::table
        .filter(email_templates::tenant_id.eq(scope.id()))
        .filter(email_templates::id.eq(id))
        .select(EmailTemplate::as_select())
        .first(conn)
        .await
        .optional()?;
    email
        .map(AnyTemplate::Email)
        .ok_or_else(|| user_error(UserErrorCode::NotFound, field, "no such template"))
}

/// What template `id` renders to with `variables` (nothing is written).
pub async fn preview(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    variables: &Value,
) -> OpResult<Rendered> {
    let template = any_template(conn, scope, id, &["templateId"]).await?;
    template.render(variables).map_err(OpError::User)
}

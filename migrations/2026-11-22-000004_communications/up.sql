-- Communication channels: 002 channel_configurations merged with 004
-- communication_configs, 004 templates and preferences, 004 communication_log merged
-- with 002 channel_messages_log, and 002 call_logs, rendez_vous, prospects, tickets.

CREATE TABLE channel_configurations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    channel_type text NOT NULL CHECK (channel_type IN ('phone', 'sms', 'email', 'whatsapp')),
    provider text NOT NULL CHECK (provider IN (
        'twilio', 'vapi', 'retell', 'mailchimp', 'klaviyo', 'sendgrid', 'redchirp',
        'smtp', 'resend', 'whatsapp_business')),
    enabled boolean NOT NULL DEFAULT false,
    configured boolean NOT NULL DEFAULT false,
    -- Credentials, encrypted by the application with GROWTHGRAPH_SECRET_KEY; never returned.
    config_encrypted bytea,
    config_public jsonb NOT NULL DEFAULT '{}',
    assistant_id text,
    from_address text,
    from_name text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, channel_type, provider),
    CHECK (assistant_id IS NULL OR channel_type = 'phone')
);
CREATE TRIGGER channel_configurations_updated_at BEFORE UPDATE ON channel_configurations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE communication_templates (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    template_type text NOT NULL CHECK (template_type IN (
        'monthly_status', 'expiration_warning', 'welcome', 'upgrade', 'renewal',
        'points_earned', 'reward_redeemed', 'appointment_reminder', 'custom')),
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp')),
    name text NOT NULL,
    subject text,
    html_content text,
    text_content text NOT NULL,
    variables jsonb NOT NULL DEFAULT '[]',
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, template_type, channel)
);
CREATE TRIGGER communication_templates_updated_at BEFORE UPDATE ON communication_templates
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE communication_preferences (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    customer_id uuid NOT NULL,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp', 'phone')),
    communication_type text NOT NULL CHECK (communication_type IN (
        'marketing', 'monthly_status', 'expiration_warning', 'loyalty', 'transactional')),
    opted_in boolean NOT NULL DEFAULT true,
    unsubscribed_at timestamptz,
    unsubscribe_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, customer_id, channel, communication_type),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
CREATE TRIGGER communication_preferences_updated_at BEFORE UPDATE ON communication_preferences
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE call_logs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    customer_id uuid,
    provider text NOT NULL CHECK (provider IN ('vapi', 'twilio', 'retell')),
    provider_call_id text,
    direction text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    agent_type text CHECK (agent_type IN ('appointment', 'qualification', 'support')),
    from_number text,
    to_number text,
    status text NOT NULL DEFAULT 'completed' CHECK (status IN
        ('queued', 'ringing', 'in_progress', 'completed', 'failed', 'busy', 'no_answer')),
    duration_seconds integer CHECK (duration_seconds >= 0),
    recording_url text,
    transcript text,
    summary text,
    metadata jsonb NOT NULL DEFAULT '{}',
    started_at timestamptz,
    ended_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX call_logs_tenant_created_idx ON call_logs (tenant_id, created_at, id);
CREATE INDEX call_logs_customer_idx ON call_logs (tenant_id, customer_id);

CREATE TABLE communication_log (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    customer_id uuid,
    template_id uuid,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp', 'phone')),
    direction text NOT NULL DEFAULT 'outbound' CHECK (direction IN ('inbound', 'outbound')),
    provider text,
    recipient text NOT NULL,
    subject text,
    content text,
    status text NOT NULL DEFAULT 'queued' CHECK (status IN
        ('queued', 'sent', 'delivered', 'opened', 'clicked', 'bounced', 'failed', 'received')),
    provider_message_id text,
    error_message text,
    metadata jsonb NOT NULL DEFAULT '{}',
    sent_at timestamptz,
    delivered_at timestamptz,
    opened_at timestamptz,
    clicked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, template_id) REFERENCES communication_templates (tenant_id, id)
);
CREATE INDEX communication_log_customer_idx
    ON communication_log (tenant_id, customer_id, created_at DESC, id DESC);
CREATE INDEX communication_log_template_idx ON communication_log (tenant_id, template_id);
CREATE INDEX communication_log_tenant_created_idx ON communication_log (tenant_id, created_at, id);
CREATE TRIGGER communication_log_updated_at BEFORE UPDATE ON communication_log
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- 002 rendez_vous: appointments booked by the appointment agent, with 24 h reminders.
CREATE TABLE rendez_vous (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    customer_id uuid,
    call_id uuid,
    client_name text NOT NULL,
    client_phone text,
    client_email text,
    rdv_date date NOT NULL,
    rdv_time time NOT NULL,
    duration_minutes integer NOT NULL DEFAULT 30 CHECK (duration_minutes > 0),
    service_type text,
    notes text,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'confirmed', 'cancelled', 'completed', 'no_show')),
    reminder_24h_sent boolean NOT NULL DEFAULT false,
    reminder_sent_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, call_id) REFERENCES call_logs (tenant_id, id)
);
CREATE INDEX rendez_vous_tenant_date_idx ON rendez_vous (tenant_id, rdv_date, rdv_time);
CREATE INDEX rendez_vous_customer_idx ON rendez_vous (tenant_id, customer_id);
CREATE INDEX rendez_vous_call_idx ON rendez_vous (tenant_id, call_id);
CREATE TRIGGER rendez_vous_updated_at BEFORE UPDATE ON rendez_vous
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- 002 prospects: inbound qualification by the qualification agent.
CREATE TABLE prospects (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    call_id uuid,
    name text NOT NULL,
    phone text,
    email text,
    company text,
    need text,
    budget text,
    timeline text,
    qualification_score integer CHECK (qualification_score BETWEEN 0 AND 100),
    status text NOT NULL DEFAULT 'new'
        CHECK (status IN ('new', 'qualified', 'unqualified', 'contacted', 'converted')),
    source text NOT NULL DEFAULT 'phone'
        CHECK (source IN ('phone', 'sms', 'email', 'whatsapp', 'web')),
    notes text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, call_id) REFERENCES call_logs (tenant_id, id)
);
CREATE INDEX prospects_tenant_created_idx ON prospects (tenant_id, created_at, id);
CREATE INDEX prospects_call_idx ON prospects (tenant_id, call_id);
CREATE TRIGGER prospects_updated_at BEFORE UPDATE ON prospects
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- 002 tickets: support requests opened by the support agent.
CREATE TABLE tickets (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    customer_id uuid,
    call_id uuid,
    ticket_number text NOT NULL,
    subject text NOT NULL,
    description text,
    category text,
    channel text NOT NULL DEFAULT 'phone'
        CHECK (channel IN ('phone', 'sms', 'email', 'whatsapp', 'web')),
    priority text NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'resolved', 'closed')),
    customer_name text,
    customer_email text,
    customer_phone text,
    assigned_to text,
    resolved_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, ticket_number),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, call_id) REFERENCES call_logs (tenant_id, id)
);
CREATE INDEX tickets_tenant_status_idx ON tickets (tenant_id, status, created_at);
CREATE INDEX tickets_customer_idx ON tickets (tenant_id, customer_id);
CREATE INDEX tickets_call_idx ON tickets (tenant_id, call_id);
CREATE TRIGGER tickets_updated_at BEFORE UPDATE ON tickets
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Prospect discovery and outreach automation (001 sections 4 and 5).

CREATE TABLE prospect_candidates (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    business_name text NOT NULL,
    website text NOT NULL,
    contact_email text,
    industry text,
    region text,
    language text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'fr')),
    form_url text,
    last_tested timestamptz,
    response_score integer CHECK (response_score BETWEEN 0 AND 100),
    automation_need_score integer CHECK (automation_need_score BETWEEN 45 AND 95),
    contacted boolean NOT NULL DEFAULT false,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, website)
);
CREATE INDEX prospect_candidates_tenant_created_idx ON prospect_candidates (tenant_id, created_at, id);
CREATE TRIGGER prospect_candidates_updated_at BEFORE UPDATE ON prospect_candidates
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE prospect_outreach_log (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    prospect_id uuid NOT NULL,
    subject text NOT NULL,
    email_body text NOT NULL,
    status text NOT NULL DEFAULT 'sent'
        CHECK (status IN ('sent', 'opened', 'replied', 'bounced', 'ignored')),
    reply_content text,
    metadata jsonb NOT NULL DEFAULT '{}',
    sent_at timestamptz NOT NULL DEFAULT now(),
    opened_at timestamptz,
    replied_at timestamptz,
    FOREIGN KEY (tenant_id, prospect_id) REFERENCES prospect_candidates (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX prospect_outreach_log_prospect_idx ON prospect_outreach_log (tenant_id, prospect_id, sent_at);

CREATE TABLE prospect_industry_performance (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    industry text NOT NULL,
    total_contacted integer NOT NULL DEFAULT 0 CHECK (total_contacted >= 0),
    total_opened integer NOT NULL DEFAULT 0 CHECK (total_opened >= 0),
    total_replied integer NOT NULL DEFAULT 0 CHECK (total_replied >= 0),
    open_rate numeric(5,4) NOT NULL DEFAULT 0 CHECK (open_rate BETWEEN 0 AND 1),
    reply_rate numeric(5,4) NOT NULL DEFAULT 0 CHECK (reply_rate BETWEEN 0 AND 1),
    avg_response_time_hours numeric(8,2),
    priority_score integer NOT NULL DEFAULT 50 CHECK (priority_score BETWEEN 0 AND 100),
    last_updated timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, industry)
);

CREATE TABLE prospect_form_tests (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    prospect_id uuid NOT NULL,
    test_submitted_at timestamptz NOT NULL DEFAULT now(),
    response_received_at timestamptz,
    response_time_minutes integer CHECK (response_time_minutes >= 0),
    has_autoresponder boolean NOT NULL DEFAULT false,
    autoresponder_tone text NOT NULL DEFAULT 'none'
        CHECK (autoresponder_tone IN ('robotic', 'human', 'personalized', 'none')),
    autoresponder_content text,
    score integer CHECK (score BETWEEN 0 AND 100),
    test_status text NOT NULL DEFAULT 'pending'
        CHECK (test_status IN ('pending', 'completed', 'failed', 'timeout')),
    metadata jsonb NOT NULL DEFAULT '{}',
    FOREIGN KEY (tenant_id, prospect_id) REFERENCES prospect_candidates (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX prospect_form_tests_prospect_idx ON prospect_form_tests (tenant_id, prospect_id, test_submitted_at);

CREATE TABLE email_templates (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    name text NOT NULL,
    description text,
    subject text NOT NULL,
    html_content text NOT NULL,
    plain_content text,
    language text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'fr')),
    category text,
    variables jsonb NOT NULL DEFAULT '[]',
    is_active boolean NOT NULL DEFAULT true,
    usage_count integer NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
    performance_score numeric(4,3) CHECK (performance_score BETWEEN 0 AND 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, name, language)
);
CREATE TRIGGER email_templates_updated_at BEFORE UPDATE ON email_templates
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE outreach_campaigns (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'paused', 'completed')),
    target_criteria jsonb NOT NULL DEFAULT '{}',
    email_template_id uuid,
    follow_up_schedule jsonb NOT NULL DEFAULT '[]',
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, email_template_id) REFERENCES email_templates (tenant_id, id)
);
CREATE INDEX outreach_campaigns_tenant_created_idx ON outreach_campaigns (tenant_id, created_at, id);
CREATE INDEX outreach_campaigns_template_idx ON outreach_campaigns (tenant_id, email_template_id);
CREATE TRIGGER outreach_campaigns_updated_at BEFORE UPDATE ON outreach_campaigns
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE outreach_emails (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    campaign_id uuid NOT NULL,
    prospect_id uuid,
    prospect_email text,
    prospect_name text,
    company_name text,
    website text,
    template_id uuid,
    subject text NOT NULL,
    content text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN
        ('pending', 'approved', 'rejected', 'sent', 'delivered', 'opened', 'replied', 'bounced')),
    sent_at timestamptz,
    opened_at timestamptz,
    replied_at timestamptz,
    thread_id text,
    gmail_message_id text,
    follow_up_sequence integer NOT NULL DEFAULT 1 CHECK (follow_up_sequence > 0),
    sender_email text,
    missing_email boolean NOT NULL DEFAULT false,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES outreach_campaigns (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, prospect_id) REFERENCES prospect_candidates (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, template_id) REFERENCES email_templates (tenant_id, id)
);
CREATE INDEX outreach_emails_campaign_idx ON outreach_emails (tenant_id, campaign_id, created_at, id);
CREATE INDEX outreach_emails_prospect_idx ON outreach_emails (tenant_id, prospect_id);
CREATE INDEX outreach_emails_template_idx ON outreach_emails (tenant_id, template_id);
CREATE TRIGGER outreach_emails_updated_at BEFORE UPDATE ON outreach_emails
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE outreach_tracking (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    email_id uuid NOT NULL,
    prospect_id uuid,
    campaign_id uuid NOT NULL,
    action text NOT NULL CHECK (action IN
        ('sent', 'delivered', 'opened', 'clicked', 'replied', 'bounced', 'unsubscribed')),
    "timestamp" timestamptz NOT NULL DEFAULT now(),
    metadata jsonb NOT NULL DEFAULT '{}',
    FOREIGN KEY (tenant_id, email_id) REFERENCES outreach_emails (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, prospect_id) REFERENCES prospect_candidates (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES outreach_campaigns (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX outreach_tracking_email_idx ON outreach_tracking (tenant_id, email_id, "timestamp");
CREATE INDEX outreach_tracking_prospect_idx ON outreach_tracking (tenant_id, prospect_id);
CREATE INDEX outreach_tracking_campaign_idx ON outreach_tracking (tenant_id, campaign_id, action);

CREATE TABLE outreach_metrics (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    campaign_id uuid NOT NULL,
    total_emails_sent integer NOT NULL DEFAULT 0 CHECK (total_emails_sent >= 0),
    total_emails_delivered integer NOT NULL DEFAULT 0 CHECK (total_emails_delivered >= 0),
    total_emails_opened integer NOT NULL DEFAULT 0 CHECK (total_emails_opened >= 0),
    total_emails_clicked integer NOT NULL DEFAULT 0 CHECK (total_emails_clicked >= 0),
    total_emails_replied integer NOT NULL DEFAULT 0 CHECK (total_emails_replied >= 0),
    total_emails_bounced integer NOT NULL DEFAULT 0 CHECK (total_emails_bounced >= 0),
    total_emails_unsubscribed integer NOT NULL DEFAULT 0 CHECK (total_emails_unsubscribed >= 0),
    open_rate numeric(5,4) NOT NULL DEFAULT 0 CHECK (open_rate BETWEEN 0 AND 1),
    click_rate numeric(5,4) NOT NULL DEFAULT 0 CHECK (click_rate BETWEEN 0 AND 1),
    reply_rate numeric(5,4) NOT NULL DEFAULT 0 CHECK (reply_rate BETWEEN 0 AND 1),
    bounce_rate numeric(5,4) NOT NULL DEFAULT 0 CHECK (bounce_rate BETWEEN 0 AND 1),
    revenue_generated numeric(12,2) NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, campaign_id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES outreach_campaigns (tenant_id, id) ON DELETE CASCADE
);
CREATE TRIGGER outreach_metrics_updated_at BEFORE UPDATE ON outreach_metrics
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

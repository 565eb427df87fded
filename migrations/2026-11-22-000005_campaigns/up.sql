-- CRM campaign builder (003): target groups, campaigns with ReactFlow workflows,
-- executions, recipients with their delivery funnel, and the seed's two views.

CREATE TABLE target_group_mappings (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    crm_name text NOT NULL,
    -- Which of our tables the CRM target group maps to; only customer-shaped tables.
    postgres_table text NOT NULL DEFAULT 'customers' CHECK (postgres_table IN ('customers')),
    -- Optional narrowing of that table: {"segment": "...", "churnRisk": "...", "isClubMember": true}.
    filter jsonb NOT NULL DEFAULT '{}',
    description text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, crm_name)
);
CREATE TRIGGER target_group_mappings_updated_at BEFORE UPDATE ON target_group_mappings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE campaigns (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text,
    status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'paused', 'completed')),
    channel text NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'sms', 'phone', 'push')),
    workflow_data jsonb NOT NULL DEFAULT '{"nodes": [], "edges": []}',
    target_group_id uuid,
    target_segment text,
    created_by uuid,
    scheduled_at timestamptz,
    started_at timestamptz,
    completed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, target_group_id) REFERENCES target_group_mappings (tenant_id, id),
    FOREIGN KEY (tenant_id, created_by) REFERENCES api_keys (tenant_id, id)
);
CREATE INDEX campaigns_tenant_created_idx ON campaigns (tenant_id, created_at, id);
CREATE INDEX campaigns_tenant_status_idx ON campaigns (tenant_id, status);
CREATE INDEX campaigns_target_group_idx ON campaigns (tenant_id, target_group_id);
CREATE INDEX campaigns_created_by_idx ON campaigns (tenant_id, created_by);
CREATE TRIGGER campaigns_updated_at BEFORE UPDATE ON campaigns
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE campaign_executions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    campaign_id uuid NOT NULL,
    execution_type text NOT NULL DEFAULT 'manual'
        CHECK (execution_type IN ('manual', 'scheduled', 'triggered')),
    status text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
    execution_data jsonb NOT NULL DEFAULT '{}',
    metrics jsonb NOT NULL DEFAULT '{}',
    started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX campaign_executions_campaign_idx ON campaign_executions (tenant_id, campaign_id, started_at);
CREATE TRIGGER campaign_executions_updated_at BEFORE UPDATE ON campaign_executions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE campaign_recipients (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    campaign_id uuid NOT NULL,
    execution_id uuid NOT NULL,
    customer_id uuid,
    email text,
    phone text,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'phone', 'push')),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'delivered', 'opened', 'clicked', 'failed')),
    sent_at timestamptz,
    delivered_at timestamptz,
    opened_at timestamptz,
    clicked_at timestamptz,
    failed_at timestamptz,
    error_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, execution_id) REFERENCES campaign_executions (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX campaign_recipients_campaign_idx ON campaign_recipients (tenant_id, campaign_id, status);
CREATE INDEX campaign_recipients_execution_idx ON campaign_recipients (tenant_id, execution_id);
CREATE INDEX campaign_recipients_customer_idx
    ON campaign_recipients (tenant_id, customer_id, created_at DESC, id DESC);
CREATE TRIGGER campaign_recipients_updated_at BEFORE UPDATE ON campaign_recipients
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The seed's views. security_invoker: they are read with the caller's row-level security.
CREATE VIEW campaign_metrics WITH (security_invoker = true) AS
SELECT
    c.tenant_id,
    c.id AS campaign_id,
    c.name,
    c.status,
    count(r.id) AS recipients,
    count(r.id) FILTER (WHERE r.sent_at IS NOT NULL
        OR r.status IN ('sent', 'delivered', 'opened', 'clicked')) AS sent,
    count(r.id) FILTER (WHERE r.status IN ('delivered', 'opened', 'clicked')) AS delivered,
    count(r.id) FILTER (WHERE r.status IN ('opened', 'clicked')) AS opened,
    count(r.id) FILTER (WHERE r.status = 'clicked') AS clicked,
    count(r.id) FILTER (WHERE r.status = 'failed') AS failed
FROM campaigns c
LEFT JOIN campaign_recipients r ON r.tenant_id = c.tenant_id AND r.campaign_id = c.id
GROUP BY c.tenant_id, c.id, c.name, c.status;

CREATE VIEW active_campaigns WITH (security_invoker = true) AS
SELECT
    c.tenant_id,
    c.id,
    c.name,
    c.description,
    c.scheduled_at,
    c.started_at,
    (SELECT count(*) FROM campaign_recipients r
     WHERE r.tenant_id = c.tenant_id AND r.campaign_id = c.id) AS recipient_count
FROM campaigns c
WHERE c.status = 'active';

-- Exact campaign metrics without scanning recipients: counters kept in the same
-- transaction as every recipient change by src/domain/campaigns/ops.rs (launch and
-- recordDeliveryEvent). `sent`, `delivered`, `opened`, `clicked` count recipients that
-- reached that state or a later one; `failed` counts recipients that failed.
CREATE TABLE campaign_delivery_counters (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    campaign_id uuid NOT NULL,
    recipients bigint NOT NULL DEFAULT 0 CHECK (recipients >= 0),
    sent bigint NOT NULL DEFAULT 0 CHECK (sent >= 0),
    delivered bigint NOT NULL DEFAULT 0 CHECK (delivered >= 0),
    opened bigint NOT NULL DEFAULT 0 CHECK (opened >= 0),
    clicked bigint NOT NULL DEFAULT 0 CHECK (clicked >= 0),
    failed bigint NOT NULL DEFAULT 0 CHECK (failed >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, campaign_id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
);
CREATE TRIGGER campaign_delivery_counters_updated_at BEFORE UPDATE ON campaign_delivery_counters
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
ALTER TABLE campaign_delivery_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE campaign_delivery_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON campaign_delivery_counters
    USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());

INSERT INTO campaign_delivery_counters (tenant_id, campaign_id, recipients, sent, delivered, opened, clicked, failed)
SELECT c.tenant_id, c.id, count(r.id), count(r.sent_at), count(r.delivered_at), count(r.opened_at),
       count(r.clicked_at), count(r.id) FILTER (WHERE r.status = 'failed')
FROM campaigns c LEFT JOIN campaign_recipients r ON r.tenant_id = c.tenant_id AND r.campaign_id = c.id
GROUP BY c.tenant_id, c.id;

-- The seed's views, now served from the counters.
DROP VIEW campaign_metrics;
CREATE VIEW campaign_metrics WITH (security_invoker = true) AS
SELECT
    c.tenant_id,
    c.id AS campaign_id,
    c.name,
    c.status,
    coalesce(k.recipients, 0) AS recipients,
    coalesce(k.sent, 0) AS sent,
    coalesce(k.delivered, 0) AS delivered,
    coalesce(k.opened, 0) AS opened,
    coalesce(k.clicked, 0) AS clicked,
    coalesce(k.failed, 0) AS failed
FROM campaigns c
LEFT JOIN campaign_delivery_counters k ON k.tenant_id = c.tenant_id AND k.campaign_id = c.id;

DROP VIEW active_campaigns;
CREATE VIEW active_campaigns WITH (security_invoker = true) AS
SELECT
    c.tenant_id,
    c.id,
    c.name,
    c.description,
    c.scheduled_at,
    c.started_at,
    coalesce(k.recipients, 0) AS recipient_count
FROM campaigns c
LEFT JOIN campaign_delivery_counters k ON k.tenant_id = c.tenant_id AND k.campaign_id = c.id
WHERE c.status = 'active';

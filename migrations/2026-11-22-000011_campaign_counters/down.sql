DROP VIEW active_campaigns;
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

DROP VIEW campaign_metrics;
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

DROP TABLE campaign_delivery_counters;

-- Message delivery: the communication log becomes the delivery record of every outgoing
-- message (queued by `sendMessage` or an automation, sent by the job runner through the
-- tenant's channel configuration, moved forward by the providers' status hooks).

ALTER TABLE communication_log DROP CONSTRAINT communication_log_status_check;
ALTER TABLE communication_log ADD CONSTRAINT communication_log_status_check CHECK (status IN
    ('queued', 'sent', 'delivered', 'opened', 'clicked', 'bounced', 'failed', 'received',
     'suppressed', 'complained'));
ALTER TABLE communication_log
    -- What kind of message this is, for consent (004 communication_preferences types).
    ADD COLUMN communication_type text NOT NULL DEFAULT 'transactional' CHECK (communication_type IN
        ('marketing', 'monthly_status', 'expiration_warning', 'loyalty', 'transactional')),
    ADD COLUMN html_content text,
    ADD COLUMN email_template_id uuid,
    ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    -- Why a message was not sent (`not_configured`, `suppressed`, `rejected`, …).
    ADD COLUMN failure_code text,
    ADD COLUMN attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Set (and committed) before a provider is called, cleared when its answer is recorded:
    -- still set when the job is claimed again means the outcome of a call is unknown.
    ADD COLUMN sending_started_at timestamptz,
    ADD COLUMN channel_configuration_id uuid,
    ADD COLUMN campaign_recipient_id uuid,
    ADD COLUMN outreach_email_id uuid,
    ADD CONSTRAINT communication_log_email_template_fkey FOREIGN KEY (tenant_id, email_template_id)
        REFERENCES email_templates (tenant_id, id) ON DELETE SET NULL (email_template_id),
    ADD CONSTRAINT communication_log_configuration_fkey FOREIGN KEY (channel_configuration_id)
        REFERENCES channel_configurations ON DELETE SET NULL;

ALTER TABLE campaign_recipients ADD CONSTRAINT campaign_recipients_tenant_id_id_key UNIQUE (tenant_id, id);
ALTER TABLE communication_log
    ADD CONSTRAINT communication_log_recipient_fkey FOREIGN KEY (tenant_id, campaign_recipient_id)
        REFERENCES campaign_recipients (tenant_id, id) ON DELETE SET NULL (campaign_recipient_id),
    ADD CONSTRAINT communication_log_outreach_email_fkey FOREIGN KEY (tenant_id, outreach_email_id)
        REFERENCES outreach_emails (tenant_id, id) ON DELETE SET NULL (outreach_email_id);

CREATE UNIQUE INDEX communication_log_idempotency_idx
    ON communication_log (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Status hooks name a message by the provider's id.
CREATE INDEX communication_log_provider_message_idx
    ON communication_log (tenant_id, provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE INDEX communication_log_email_template_idx ON communication_log (tenant_id, email_template_id);
CREATE INDEX communication_log_configuration_idx ON communication_log (channel_configuration_id);
CREATE INDEX communication_log_recipient_idx ON communication_log (tenant_id, campaign_recipient_id);
CREATE INDEX communication_log_outreach_email_idx ON communication_log (tenant_id, outreach_email_id);

ALTER TABLE queue_jobs DROP CONSTRAINT queue_jobs_job_type_check;
ALTER TABLE queue_jobs ADD CONSTRAINT queue_jobs_job_type_check CHECK (job_type IN (
    'daily_prospect_queue', 'bulk_email', 'intelligence_analysis',
    'crm_sync', 'webhook_delivery', 'growth_insights_refresh', 'message_delivery'));

-- The message runner polls often: it visits only the tenants that have due work of a
-- type. Reviewed SECURITY DEFINER: returns tenant ids only (pinned search_path, read-only).
CREATE FUNCTION tenants_with_due_jobs(p_job_type text)
RETURNS TABLE (tenant_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT DISTINCT q.tenant_id FROM queue_jobs q
    WHERE q.job_type = p_job_type
      AND ((q.status = 'pending' AND q.run_at <= now())
           OR (q.status = 'processing' AND q.started_at < now() - interval '5 minutes'))
$$;
CREATE POLICY system_key_lookup ON queue_jobs FOR SELECT TO CURRENT_USER USING (true);
REVOKE ALL ON FUNCTION tenants_with_due_jobs(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenants_with_due_jobs(text) TO growthgraph_app;

-- Status hooks: `POST /hooks/{provider}/{token}` names a channel configuration by a secret
-- token (shown once by `configureChannel`, found by its SHA-256; also kept sealed with the
-- server's secret key, so that messages can name their status callback).
ALTER TABLE channel_configurations
    ADD COLUMN hook_token_hash bytea UNIQUE,
    ADD COLUMN hook_token_sealed bytea;

-- Reviewed SECURITY DEFINER: a provider's status hook arrives before any tenant is known;
-- this returns only the configuration the token names (pinned search_path, read-only).
CREATE POLICY system_key_lookup ON channel_configurations FOR SELECT TO CURRENT_USER USING (true);
CREATE FUNCTION channel_hook_target(p_token_hash bytea)
RETURNS TABLE (configuration_id uuid, tenant_id uuid, provider text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT c.id, c.tenant_id, c.provider
    FROM channel_configurations c
    WHERE c.hook_token_hash = p_token_hash
$$;
REVOKE ALL ON FUNCTION channel_hook_target(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION channel_hook_target(bytea) TO growthgraph_app;

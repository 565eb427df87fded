DROP FUNCTION tenants_with_due_jobs(text);
DROP POLICY system_key_lookup ON queue_jobs;
DROP FUNCTION channel_hook_target(bytea);
DROP POLICY system_key_lookup ON channel_configurations;
ALTER TABLE channel_configurations DROP COLUMN hook_token_sealed, DROP COLUMN hook_token_hash;

DELETE FROM queue_jobs WHERE job_type = 'message_delivery';
ALTER TABLE queue_jobs DROP CONSTRAINT queue_jobs_job_type_check;
ALTER TABLE queue_jobs ADD CONSTRAINT queue_jobs_job_type_check CHECK (job_type IN (
    'daily_prospect_queue', 'bulk_email', 'intelligence_analysis',
    'crm_sync', 'webhook_delivery', 'growth_insights_refresh'));

DROP INDEX communication_log_outreach_email_idx;
DROP INDEX communication_log_recipient_idx;
DROP INDEX communication_log_configuration_idx;
DROP INDEX communication_log_email_template_idx;
DROP INDEX communication_log_provider_message_idx;
DROP INDEX communication_log_idempotency_idx;
ALTER TABLE communication_log
    DROP CONSTRAINT communication_log_outreach_email_fkey,
    DROP CONSTRAINT communication_log_recipient_fkey;
ALTER TABLE campaign_recipients DROP CONSTRAINT campaign_recipients_tenant_id_id_key;
ALTER TABLE communication_log
    DROP COLUMN outreach_email_id,
    DROP COLUMN campaign_recipient_id,
    DROP COLUMN channel_configuration_id,
    DROP COLUMN sending_started_at,
    DROP COLUMN attempts,
    DROP COLUMN failure_code,
    DROP COLUMN idempotency_key,
    DROP COLUMN email_template_id,
    DROP COLUMN html_content,
    DROP COLUMN communication_type;
UPDATE communication_log SET status = 'failed' WHERE status IN ('suppressed', 'complained');
ALTER TABLE communication_log DROP CONSTRAINT communication_log_status_check;
ALTER TABLE communication_log ADD CONSTRAINT communication_log_status_check CHECK (status IN
    ('queued', 'sent', 'delivered', 'opened', 'clicked', 'bounced', 'failed', 'received'));

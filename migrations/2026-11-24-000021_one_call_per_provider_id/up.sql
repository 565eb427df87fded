-- A voice provider reports one call several times (ringing, in progress, completed…):
-- its call id names one call_logs row per tenant and provider.
CREATE UNIQUE INDEX call_logs_provider_call_idx
    ON call_logs (tenant_id, provider, provider_call_id)
    WHERE provider_call_id IS NOT NULL;

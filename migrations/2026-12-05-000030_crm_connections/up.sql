-- A tenant's CRM (seed 004: the wineries' Commerce7 or Shopify, where club membership is
-- a discount the CRM applies): which one, the shop or CRM tenant it is, and the
-- credentials sealed with the server's key (never readable through the API). One per
-- tenant. Its hook token names it for the CRM's webhooks (`POST /hooks/crm/{provider}/{token}`).
CREATE TABLE crm_connections (
    tenant_id uuid PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    provider text NOT NULL CHECK (provider IN ('commerce7', 'shopify')),
    shop text NOT NULL CHECK (length(shop) BETWEEN 1 AND 255),
    credentials_sealed bytea NOT NULL,
    hook_token_hash bytea NOT NULL UNIQUE,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER crm_connections_updated_at BEFORE UPDATE ON crm_connections
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
ALTER TABLE crm_connections ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm_connections FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm_connections
    USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());

-- Reviewed SECURITY DEFINER: a CRM webhook arrives before any tenant is known; this
-- returns only the tenant and provider the token names (pinned search_path, read-only).
CREATE POLICY system_key_lookup ON crm_connections FOR SELECT TO CURRENT_USER USING (true);
CREATE FUNCTION crm_hook_target(p_token_hash bytea)
RETURNS TABLE (tenant_id uuid, provider text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT c.tenant_id, c.provider FROM crm_connections c WHERE c.hook_token_hash = p_token_hash
$$;
REVOKE ALL ON FUNCTION crm_hook_target(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_hook_target(bytea) TO growthgraph_app;

-- The CRM webhooks already applied, by the CRM's delivery id: a delivery sent again
-- (the CRM's retry, or a replay) is answered without being applied twice.
CREATE TABLE crm_webhook_receipts (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    provider text NOT NULL,
    delivery_id text NOT NULL CHECK (length(delivery_id) BETWEEN 1 AND 200),
    topic text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, provider, delivery_id)
);
ALTER TABLE crm_webhook_receipts ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm_webhook_receipts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm_webhook_receipts
    USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());

DROP TABLE queue_jobs;
DROP TABLE idempotency_keys;
DROP TABLE domain_events;
DROP TABLE api_keys;
DROP TABLE tenants;
DROP FUNCTION current_tenant_id();
DROP FUNCTION set_updated_at();
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    REVOKE USAGE, SELECT ON SEQUENCES FROM growthgraph_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM growthgraph_app;
REVOKE USAGE ON SCHEMA public FROM growthgraph_app;

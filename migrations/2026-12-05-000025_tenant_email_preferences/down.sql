ALTER TABLE tenants DROP CONSTRAINT tenants_email_preferences_object;
REVOKE UPDATE (email_preferences) ON tenants FROM growthgraph_app;

-- Admins set their tenant's email preferences (seed 000: marketing, sequences,
-- weekly_digest) through the API; the row stays the tenant's alone (row-level security).
GRANT UPDATE (email_preferences) ON tenants TO growthgraph_app;
ALTER TABLE tenants ADD CONSTRAINT tenants_email_preferences_object
    CHECK (jsonb_typeof(email_preferences) = 'object');

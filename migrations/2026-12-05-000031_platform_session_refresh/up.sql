-- Seed 004's OAuth sessions, refreshed by the server: Shopify's expiring offline access
-- tokens last an hour and come with a refresh token that is replaced at each use. The
-- tokens stay sealed with the server's key (never readable through the API); when the last
-- refresh failed, why (the CRM's message, never a token).
ALTER TABLE platform_sessions
    ADD COLUMN refresh_token_expires_at timestamptz,
    ADD COLUMN refreshed_at timestamptz,
    ADD COLUMN last_refresh_error text CHECK (length(last_refresh_error) <= 1000);
CREATE INDEX platform_sessions_expiry_idx ON platform_sessions (tenant_id, expires_at)
    WHERE refresh_token_encrypted IS NOT NULL;

DROP INDEX platform_sessions_expiry_idx;
ALTER TABLE platform_sessions
    DROP COLUMN last_refresh_error,
    DROP COLUMN refreshed_at,
    DROP COLUMN refresh_token_expires_at;

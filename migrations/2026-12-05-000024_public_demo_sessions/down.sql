DROP FUNCTION retention_metrics();
DROP INDEX demo_sessions_visitor_idx;
DROP FUNCTION demo_session_tenant(text);
DROP FUNCTION demo_tenant(text);

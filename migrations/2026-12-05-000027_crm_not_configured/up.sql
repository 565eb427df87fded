-- With no CRM configured for a tenant, a sync ends `not_configured`: nothing was
-- synchronised, and the data says so (a sync that reached no CRM is never `synced`).
ALTER TABLE club_stages DROP CONSTRAINT club_stages_sync_status_check;
ALTER TABLE club_stages ADD CONSTRAINT club_stages_sync_status_check
    CHECK (sync_status IN ('pending', 'synced', 'failed', 'not_configured'));
ALTER TABLE club_enrollments DROP CONSTRAINT club_enrollments_sync_status_check;
ALTER TABLE club_enrollments ADD CONSTRAINT club_enrollments_sync_status_check
    CHECK (sync_status IN ('pending', 'synced', 'failed', 'not_configured'));

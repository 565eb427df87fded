UPDATE club_stages SET sync_status = 'failed' WHERE sync_status = 'not_configured';
UPDATE club_enrollments SET sync_status = 'failed' WHERE sync_status = 'not_configured';
ALTER TABLE club_stages DROP CONSTRAINT club_stages_sync_status_check;
ALTER TABLE club_stages ADD CONSTRAINT club_stages_sync_status_check
    CHECK (sync_status IN ('pending', 'synced', 'failed'));
ALTER TABLE club_enrollments DROP CONSTRAINT club_enrollments_sync_status_check;
ALTER TABLE club_enrollments ADD CONSTRAINT club_enrollments_sync_status_check
    CHECK (sync_status IN ('pending', 'synced', 'failed'));

DROP TABLE campaign_runs;
DROP INDEX communication_log_sequence_idx;
ALTER TABLE communication_log DROP CONSTRAINT communication_log_sequence_fkey,
    DROP COLUMN email_sequence_id;
DROP TABLE email_sequence_steps;
DROP FUNCTION job_queue_metrics();
UPDATE queue_jobs SET status = 'failed' WHERE status = 'cancelled';
ALTER TABLE queue_jobs DROP CONSTRAINT queue_jobs_status_check;
ALTER TABLE queue_jobs ADD CONSTRAINT queue_jobs_status_check
    CHECK (status IN ('pending', 'processing', 'completed', 'failed'));
ALTER TABLE club_programs DROP COLUMN expiration_warning_days;
DROP TABLE scheduled_runs;

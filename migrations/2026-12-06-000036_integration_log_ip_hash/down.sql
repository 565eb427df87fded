DROP INDEX integration_logs_created_id_idx;
DROP INDEX performance_metrics_created_idx;
ALTER TABLE integration_logs DROP COLUMN ip_hash;

-- Integration logs keep the caller's address only as its SHA-256 (seed 001 §8 asks for
-- the IP; the address itself is personal data the logs do not need).
ALTER TABLE integration_logs ADD COLUMN ip_hash text CHECK (ip_hash ~ '^[0-9a-f]{64}$');
CREATE INDEX performance_metrics_created_idx ON performance_metrics (tenant_id, recorded_at, id);
CREATE INDEX integration_logs_created_id_idx ON integration_logs (tenant_id, created_at, id);

-- The scheduler: a periodic task runs once per tenant and period (`monthly_status` once a
-- month, `expiration_warnings` and `retention` once a day), whatever the number of server
-- instances: its run is this row, inserted in the transaction that does the work.
CREATE TABLE scheduled_runs (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    task text NOT NULL CHECK (task IN
        ('monthly_status', 'expiration_warnings', 'appointment_reminders', 'retention')),
    period text NOT NULL CHECK (length(period) BETWEEN 1 AND 40),
    ran_at timestamptz NOT NULL DEFAULT now(),
    result jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, task, period)
);
ALTER TABLE scheduled_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduled_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON scheduled_runs
    USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());

-- How many days before a membership expires its warning goes out (seed 004).
ALTER TABLE club_programs ADD COLUMN expiration_warning_days integer NOT NULL DEFAULT 30
    CHECK (expiration_warning_days BETWEEN 1 AND 365);

-- A job an admin cancelled.
ALTER TABLE queue_jobs DROP CONSTRAINT queue_jobs_status_check;
ALTER TABLE queue_jobs ADD CONSTRAINT queue_jobs_status_check
    CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled'));

-- `/metrics` shows the queue per job type and status, and how long jobs that ran in the
-- last hour waited past their time. Reviewed SECURITY DEFINER: counts and durations
-- only, no tenant or payload (pinned search_path, read-only).
CREATE FUNCTION job_queue_metrics()
RETURNS TABLE (job_type text, status text, jobs bigint, p50_seconds float8, p99_seconds float8)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT q.job_type, q.status, count(*),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM q.completed_at - q.run_at))
               FILTER (WHERE q.completed_at > now() - interval '1 hour'),
           percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM q.completed_at - q.run_at))
               FILTER (WHERE q.completed_at > now() - interval '1 hour')
    FROM queue_jobs q
    GROUP BY q.job_type, q.status
    ORDER BY 1, 2
$$;
REVOKE ALL ON FUNCTION job_queue_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION job_queue_metrics() TO growthgraph_app;

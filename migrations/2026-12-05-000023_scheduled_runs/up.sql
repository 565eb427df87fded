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

-- Email sequences (seed 000): the steps of each segment's sequence, each an outreach email
-- template sent `delay_hours` after the previous step (after the start, for the first).
CREATE TABLE email_sequence_steps (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    segment text NOT NULL CHECK (segment IN
        ('frozen_starter', 'rejected_requester', 'collector_unused', 'free_maximizer')),
    step_number integer NOT NULL CHECK (step_number BETWEEN 1 AND 20),
    delay_hours integer NOT NULL CHECK (delay_hours BETWEEN 0 AND 8760),
    email_template_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, segment, step_number),
    FOREIGN KEY (tenant_id, email_template_id) REFERENCES email_templates (tenant_id, id)
);
CREATE INDEX email_sequence_steps_template_idx ON email_sequence_steps (tenant_id, email_template_id);
ALTER TABLE email_sequence_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_sequence_steps FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_sequence_steps
    USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());

-- The sequence a message is a step of (an unsubscribe reported for it stops the sequence).
ALTER TABLE communication_log ADD COLUMN email_sequence_id uuid,
    ADD CONSTRAINT communication_log_sequence_fkey FOREIGN KEY (tenant_id, email_sequence_id)
        REFERENCES email_sequences (tenant_id, id) ON DELETE SET NULL (email_sequence_id);
CREATE INDEX communication_log_sequence_idx ON communication_log (tenant_id, email_sequence_id);

-- Campaign workflows (seed 003): where each recipient stands in its campaign's workflow.
-- A run is `waiting` at `node_id` until `due_at` (a wait node, or a step not yet taken),
-- then moves on; `ended` when it reached an end. Each step is taken in the transaction
-- that locks the run, so a step happens once, and a restart resumes where it stood.
CREATE TABLE campaign_runs (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    recipient_id uuid NOT NULL,
    campaign_id uuid NOT NULL,
    execution_id uuid NOT NULL,
    node_id text NOT NULL CHECK (length(node_id) BETWEEN 1 AND 200),
    status text NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'ended')),
    -- The wait at `node_id` has begun (when due, the run leaves the wait node).
    waited boolean NOT NULL DEFAULT false,
    due_at timestamptz,
    path jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, recipient_id),
    FOREIGN KEY (tenant_id, recipient_id) REFERENCES campaign_recipients (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, execution_id) REFERENCES campaign_executions (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX campaign_runs_due_idx ON campaign_runs (tenant_id, due_at) WHERE status = 'waiting';
CREATE INDEX campaign_runs_campaign_idx ON campaign_runs (tenant_id, campaign_id);
CREATE INDEX campaign_runs_execution_idx ON campaign_runs (tenant_id, execution_id, status);
CREATE TRIGGER campaign_runs_updated_at BEFORE UPDATE ON campaign_runs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
ALTER TABLE campaign_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE campaign_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON campaign_runs
    USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());

-- The prompt learning loop (seed 001 §3): executions recorded once, one running A/B test
-- per prompt, tests and their arms' tallies.

-- An execution is recorded once (its id is the caller's).
CREATE UNIQUE INDEX prompt_performance_execution_idx ON prompt_performance (tenant_id, execution_id);

-- One A/B test runs at a time per prompt (an assignment names one arm).
CREATE UNIQUE INDEX prompt_ab_tests_one_running_idx
    ON prompt_ab_tests (tenant_id, prompt_name) WHERE status = 'running';
CREATE INDEX prompt_ab_tests_running_idx ON prompt_ab_tests (tenant_id, started_at) WHERE status = 'running';

-- Feedback waiting for the learning job.
CREATE INDEX feedback_tracking_unprocessed_idx ON feedback_tracking (tenant_id, created_at)
    WHERE processed_at IS NULL;

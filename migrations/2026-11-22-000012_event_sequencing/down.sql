DROP FUNCTION sequence_domain_events();
DROP POLICY system_sequencer ON domain_events;
DROP INDEX domain_events_unsequenced_idx;
DROP INDEX domain_events_tenant_position_idx;
ALTER TABLE domain_events DROP COLUMN position;

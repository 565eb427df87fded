DROP TYPE campaign_execution_row;
DROP TYPE campaign_counters_row;

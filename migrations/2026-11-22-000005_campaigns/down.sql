DROP VIEW active_campaigns;
DROP VIEW campaign_metrics;
DROP TABLE campaign_recipients;
DROP TABLE campaign_executions;
DROP TABLE campaigns;
DROP TABLE target_group_mappings;

DROP TABLE tickets;
DROP TABLE prospects;
DROP TABLE rendez_vous;
DROP TABLE communication_log;
DROP TABLE call_logs;
DROP TABLE communication_preferences;
DROP TABLE communication_templates;
DROP TABLE channel_configurations;

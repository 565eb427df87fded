DROP TABLE avenir_profile_embeddings;
DROP TABLE integration_logs;
DROP TABLE translation_cache;
DROP TABLE translation_dictionary;
DROP TABLE intent_translations;

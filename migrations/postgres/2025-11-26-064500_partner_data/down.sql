DROP TABLE meta;
DROP TABLE audit_log;
DROP TABLE usage_stats;
DROP TABLE grants;
DROP TABLE allow_entries;
DROP TABLE api_keys;
DROP TABLE partners;
DROP TABLE "groups";

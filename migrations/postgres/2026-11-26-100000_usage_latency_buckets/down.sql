DROP TABLE usage_latency;

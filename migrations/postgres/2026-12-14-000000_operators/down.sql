DELETE FROM dashboard_sessions;
ALTER TABLE dashboard_sessions DROP COLUMN operator_id;
DROP TABLE login_throttle;
DROP TABLE operator_tokens;
DROP TABLE operators;

DROP TRIGGER meta_revision_notify ON meta;
DROP FUNCTION partnergate_notify_revision();
DROP TABLE nodes;

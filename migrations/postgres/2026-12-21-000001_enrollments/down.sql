DELETE FROM meta WHERE key = 'enrollments';
DROP TABLE enrollments;

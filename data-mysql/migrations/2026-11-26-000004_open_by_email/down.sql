ALTER TABLE checkouts DROP INDEX IF EXISTS checkouts_open_by_email;

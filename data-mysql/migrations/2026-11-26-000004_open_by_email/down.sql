ALTER TABLE checkouts DROP INDEX checkouts_open_by_email;

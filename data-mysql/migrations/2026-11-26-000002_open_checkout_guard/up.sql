-- Makes a double checkout impossible at any isolation level: a generated column holds
-- the UPC while the checkout is open (NULL once checked in), and a UNIQUE index on it
-- admits one open checkout per copy (NULLs never collide). Adds objects only.
-- One dialect for Oracle MySQL 8.0.13+ and MariaDB 10.6+: STORED (not MariaDB's
-- PERSISTENT), no IF NOT EXISTS; the migration table makes it run once, and the
-- start-up checks (preflight.rs) refuse a table that would break it, with a reason.
ALTER TABLE checkouts
    ADD COLUMN open_asset_upc VARCHAR(10)
        AS (IF(checkin_date IS NULL, asset_upc, NULL)) STORED,
    ADD UNIQUE INDEX checkouts_one_open_per_asset (open_asset_upc),
    ADD INDEX checkouts_by_asset (asset_upc, checkout_date),
    ADD INDEX checkouts_by_date (checkout_date, row_id),
    ADD INDEX checkouts_by_email_date (user_email, checkout_date);

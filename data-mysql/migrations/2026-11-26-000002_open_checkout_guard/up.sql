-- Makes a double checkout impossible at any isolation level: a generated column holds
-- the UPC while the checkout is open (NULL once checked in), and a UNIQUE index on it
-- admits one open checkout per copy (NULLs never collide). Adds objects only.
ALTER TABLE checkouts
    ADD COLUMN IF NOT EXISTS open_asset_upc VARCHAR(10)
        AS (IF(checkin_date IS NULL, asset_upc, NULL)) PERSISTENT,
    ADD UNIQUE INDEX IF NOT EXISTS checkouts_one_open_per_asset (open_asset_upc),
    ADD INDEX IF NOT EXISTS checkouts_by_asset (asset_upc, checkout_date),
    ADD INDEX IF NOT EXISTS checkouts_by_date (checkout_date, row_id),
    ADD INDEX IF NOT EXISTS checkouts_by_email_date (user_email, checkout_date);

ALTER TABLE checkouts
    DROP INDEX IF EXISTS checkouts_by_email_date,
    DROP INDEX IF EXISTS checkouts_by_date,
    DROP INDEX IF EXISTS checkouts_by_asset,
    DROP INDEX IF EXISTS checkouts_one_open_per_asset,
    DROP COLUMN IF EXISTS open_asset_upc;

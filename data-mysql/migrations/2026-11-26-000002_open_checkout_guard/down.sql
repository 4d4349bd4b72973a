ALTER TABLE checkouts
    DROP INDEX checkouts_by_email_date,
    DROP INDEX checkouts_by_date,
    DROP INDEX checkouts_by_asset,
    DROP INDEX checkouts_one_open_per_asset,
    DROP COLUMN open_asset_upc;

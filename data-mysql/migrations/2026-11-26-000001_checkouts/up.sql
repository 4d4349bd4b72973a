-- The legacy table, created only where it does not exist yet (a fresh database).
-- An existing legacy table is never altered by this migration.
CREATE TABLE IF NOT EXISTS checkouts (
    row_id INT AUTO_INCREMENT PRIMARY KEY,
    user_email VARCHAR(254) NOT NULL,
    asset_upc VARCHAR(10) NOT NULL,
    checkout_date DATETIME NOT NULL DEFAULT NOW(),
    checkin_date DATETIME DEFAULT NULL,
    INDEX (user_email)
);

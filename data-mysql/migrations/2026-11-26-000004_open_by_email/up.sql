-- Open checkouts of many patrons without scanning their histories
-- (Patron.checkOuts(currentCheckoutsOnly: true) on large tables).
ALTER TABLE checkouts
    ADD INDEX checkouts_open_by_email (user_email, checkin_date);

DROP TABLE IF EXISTS checkout_outbox;

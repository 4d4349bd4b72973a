-- Events written in the same transaction as the checkout row they describe, relayed
-- to Kafka after commit (at-least-once; consumers de-duplicate by event_id).
CREATE TABLE IF NOT EXISTS checkout_outbox (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    event_id CHAR(36) NOT NULL,
    topic VARCHAR(32) NOT NULL,
    message_key VARCHAR(10) NOT NULL,
    payload TEXT NOT NULL,
    created_at DATETIME(3) NOT NULL,
    sent_at DATETIME(3) NULL,
    UNIQUE INDEX checkout_outbox_event_id (event_id),
    INDEX checkout_outbox_unsent (sent_at, id)
);

-- The W3C trace context of the mutation that wrote the event, sent on as Kafka
-- headers so that its deliveries join the mutation's trace (SPEC section 8).
-- Nullable: rows written without tracing, or by an older instance during a rolling
-- update, have none.
ALTER TABLE checkout_outbox
    ADD COLUMN traceparent VARCHAR(128) NULL,
    ADD COLUMN tracestate VARCHAR(512) NULL;

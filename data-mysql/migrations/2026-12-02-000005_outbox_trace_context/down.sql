ALTER TABLE checkout_outbox DROP COLUMN traceparent, DROP COLUMN tracestate;

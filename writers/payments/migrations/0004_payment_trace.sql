-- The trace of the order the payment belongs to (a W3C traceparent), stored
-- when the payment is recorded: the provider's webhook and the expiry sweep
-- arrive without one, and continue the order's trace from here.
alter table payments add column traceparent text;

-- How many of a webhook's deliveries are being sent: a dispatcher sets
-- sending_until to its lease's end when it takes a delivery, and clears it
-- with the outcome (one that died leaves it to run out). A dispatcher takes
-- at most dispatch.per_webhook of one webhook's deliveries at a time, so a
-- receiver that is slow to answer cannot hold every place it has.
alter table deliveries add column sending_until timestamptz;
create index deliveries_sending on deliveries (webhook_id) where sending_until is not null;
-- Each webhook's due deliveries, oldest first, for that per-webhook claim.
create index deliveries_due_by_webhook on deliveries (webhook_id, next_attempt_at) where status = 'PENDING';

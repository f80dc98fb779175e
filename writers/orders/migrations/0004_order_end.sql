-- Shipping ends a confirmed order: COMPLETED when delivered, DELIVERY_FAILED
-- (refunded and restocked; cancel_reason holds the carrier's reason) when not.
alter table orders drop constraint orders_status_check;
alter table orders add constraint orders_status_check check (status in ('PENDING', 'CONFIRMED', 'CANCELLED', 'COMPLETED', 'DELIVERY_FAILED'));

-- When the order was confirmed: its updated_at moves on with the shipment, and
-- the chaos and failover runs measure the saga up to confirmation.
alter table orders add column confirmed_at timestamptz;

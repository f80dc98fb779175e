-- The shipping context: one shipment per confirmed order.
-- status: REQUESTED (recorded, the carrier not yet asked or its answer not yet
-- stored), IN_TRANSIT (the carrier took it: ShipmentRequested), DELIVERED or
-- FAILED (the carrier's callback, confirmed with the carrier: ShipmentDelivered
-- or ShipmentFailed). version counts the shipment's events.
create table shipments (
    order_id uuid primary key,
    customer_id text not null,
    status text not null check (status in ('REQUESTED', 'IN_TRANSIT', 'DELIVERED', 'FAILED')),
    shipment_id text,
    failure_reason text,
    version bigint not null,
    traceparent text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check ((status = 'REQUESTED') = (shipment_id is null))
);


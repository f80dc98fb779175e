-- The notifications context: where customers want their notifications
-- POSTed, and each notification's delivery to each of those places.

-- owner: the customer whose events it receives; a shop-wide webhook
-- (registered by an admin) has none and receives every customer's. secret:
-- the Standard Webhooks key that signs its deliveries, shown once at
-- registration.
create table webhooks (
    id uuid primary key,
    owner text,
    shop_wide boolean not null,
    url text not null,
    secret text not null,
    created_by text not null,
    created_at timestamptz not null default now(),
    check (shop_wide = (owner is null))
);
create index webhooks_by_owner on webhooks (owner);

-- One delivery per webhook and event: written by the notifications consumer
-- with the event (a redelivered event finds its row), POSTed by its
-- dispatcher until the receiver accepts it (DELIVERED) or after the last
-- attempt (DEAD: the dead letter an admin lists and replays). A PENDING row
-- is due at next_attempt_at; a dispatcher that takes it moves that forward
-- by its lease, so that another dispatcher leaves it alone meanwhile.
create table deliveries (
    webhook_id uuid not null references webhooks (id) on delete cascade,
    event_id text not null,
    kind text not null,
    order_id text not null,
    body text not null,
    status text not null default 'PENDING' check (status in ('PENDING', 'DELIVERED', 'DEAD')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error text,
    created_at timestamptz not null default now(),
    delivered_at timestamptz,
    primary key (webhook_id, event_id)
);
create index deliveries_due on deliveries (next_attempt_at) where status = 'PENDING';
create index deliveries_dead on deliveries (created_at desc) where status = 'DEAD';

-- Each order's customer, from the order events that name it: the consumer
-- reads it for an event that does not (a refund from before refunds named
-- their customer).
create table order_customers (
    order_id text primary key,
    customer_id text not null
);

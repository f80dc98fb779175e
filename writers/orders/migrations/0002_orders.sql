-- The orders context: orders with their lines, and the local catalog replica
-- (fed by ProductCreated / StockAdjusted) that prices every line.

create table orders (
    id uuid primary key,
    customer_id text not null,
    status text not null check (status in ('PENDING', 'CONFIRMED', 'CANCELLED')),
    cancel_reason text,
    total_minor bigint not null check (total_minor >= 0),
    currency text not null,
    version bigint not null,
    idempotency_key text not null,
    request_hash text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (customer_id, idempotency_key)
);

create table order_items (
    order_id uuid not null references orders (id),
    line_no int not null,
    sku text not null,
    quantity int not null check (quantity > 0),
    unit_price_minor bigint not null check (unit_price_minor >= 0),
    primary key (order_id, line_no)
);

create table catalog (
    sku text primary key,
    name text not null,
    price_minor bigint not null,
    currency text not null,
    version bigint not null
);

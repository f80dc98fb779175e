-- Reservations, one per order, written by the inventory consumer's saga steps.
-- status: RESERVED (stock held), REJECTED (nothing held), RELEASED (given back
-- after a cancellation), COMMITTED (sold).
create table reservations (
    order_id uuid primary key,
    customer_id text not null,
    status text not null check (status in ('RESERVED', 'REJECTED', 'RELEASED', 'COMMITTED')),
    version bigint not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table reservation_lines (
    order_id uuid not null references reservations (order_id),
    sku text not null references products (sku),
    quantity int not null check (quantity > 0),
    primary key (order_id, sku)
);

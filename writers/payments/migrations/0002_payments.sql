-- The payments context: one payment per order, and every provider notification
-- applied once (keyed by the provider's transaction id and status).
create table payments (
    order_id uuid primary key,
    customer_id text not null,
    status text not null check (status in ('PENDING', 'CAPTURED', 'FAILED', 'REFUNDED')),
    amount_minor bigint not null check (amount_minor >= 0),
    currency text not null,
    provider_token text not null,
    redirect_url text not null,
    transaction_id text,
    failure_reason text,
    version bigint not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table provider_notifications (
    transaction_id text not null,
    transaction_status text not null,
    order_id uuid not null,
    received_at timestamptz not null default now(),
    primary key (transaction_id, transaction_status)
);

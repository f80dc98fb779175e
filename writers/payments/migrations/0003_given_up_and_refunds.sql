-- A payment is opened in two steps (recorded, then opened at the provider with
-- no lock held), so its token is not known when the row is first written.
alter table payments alter column provider_token drop not null;
alter table payments alter column redirect_url drop not null;
-- The provider's own id for the transaction it opened: a notification naming
-- another transaction is refused.
alter table payments add column provider_transaction_id text;
-- REFUNDING: a refund is owed and recorded but not yet confirmed by the
-- provider (the call runs after that commit, outside any lock); whoever finds
-- it there calls the provider again (refunds are idempotent) and finishes it.
alter table payments drop constraint payments_status_check;
alter table payments add constraint payments_status_check
    check (status in ('PENDING', 'CAPTURED', 'FAILED', 'REFUNDING', 'REFUNDED'));
create index payments_refunding on payments (updated_at) where status = 'REFUNDING';

-- Orders the payments side has seen cancelled. An OrderCancelled (order topic)
-- may be read before the StockReserved (inventory topic) of the same order;
-- this row makes that later StockReserved open no payment.
create table given_up_orders (
    order_id uuid primary key,
    reason text not null,
    given_up_at timestamptz not null default now()
);

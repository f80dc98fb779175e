-- The inventory context: products with their stock. available = on_hand - reserved;
-- the checks make overselling impossible whatever the code above them does.
create table products (
    sku text primary key,
    name text not null,
    price_minor bigint not null check (price_minor >= 0),
    currency text not null,
    on_hand int not null check (on_hand >= 0),
    reserved int not null default 0 check (reserved >= 0 and reserved <= on_hand),
    version bigint not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

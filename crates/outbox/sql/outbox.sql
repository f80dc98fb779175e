-- The outbox and inbox of a service database. Every write service links this file
-- into its migrations (0001_outbox.sql), so all of them share one definition.

-- Debezium's Outbox Event Router reads inserts into this table from the WAL and
-- routes them by aggregatetype to outflow.<aggregatetype>.events, keyed by
-- aggregateid. Rows are deleted in the transaction that inserts them: the WAL
-- keeps the insert, the table stays empty.
create table outbox (
    id uuid primary key,
    aggregatetype text not null,
    aggregateid text not null,
    type text not null,
    payload bytea not null,
    traceparent text
);

-- Written by the connector's heartbeat.action.query, so that an idle database
-- still produces WAL that the connector acknowledges and the slot advances.
create table outbox_heartbeat (
    id int primary key,
    beat_at timestamptz not null
);

-- The inbox: one row per consumed event, written in the same transaction as its
-- effect, so a redelivered event is recognised and changes nothing.
create table processed_events (
    event_id uuid primary key,
    event_type text not null,
    processed_at timestamptz not null default now()
);

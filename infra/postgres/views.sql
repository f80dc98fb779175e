-- The views database is the MongoDB API server's storage (FerretDB v1, PostgreSQL
-- backend): one table per collection, each document in a jsonb column `_jsonb`.
--
-- FerretDB v1 pushes a filter on `_id` down as `_jsonb->'_id' @> '"<id>"'`, and
-- the unique btree index it keeps on `(_jsonb->'_id')` cannot serve `@>`: every
-- find and update by `_id` scans the whole table, so the views slow down in
-- proportion to their size (12,600 order views: about 26 events/s applied). A GIN
-- index on the same expression serves `@>`. This file gives every FerretDB table
-- one, the existing ones now and new ones as FerretDB creates them (an event
-- trigger). Applied by scripts/up at every PostgreSQL start; idempotent.
--
-- Without GIN's fast update: with it, new entries wait in a pending list until
-- a vacuum, and every lookup reads the whole list. Every view write inserts an
-- entry (FerretDB rewrites the row, never a HOT update), and autovacuum comes
-- after a fifth of the table has changed, so on a large table the list held
-- 32,000 entries and each write's lookup read them all: PostgreSQL's CPU per
-- saga doubled with 500,000 more orders in the views (scripts/bench scale).

set client_min_messages = warning;

create or replace function outflow_index_ferretdb_table(tbl regclass) returns void
language plpgsql as $$
declare
    name text := left((select relname from pg_class where oid = tbl), 50) || '_id_gin';
    idx regclass;
begin
    if not exists (select 1 from pg_attribute where attrelid = tbl and attname = '_jsonb' and not attisdropped) then
        return;
    end if;
    execute format('create index if not exists %I on %s using gin ((_jsonb->''_id'') jsonb_path_ops) with (fastupdate = off)', name, tbl);
    select i.indexrelid::regclass into idx
    from pg_index i join pg_class c on c.oid = i.indexrelid
    where i.indrelid = tbl and c.relname = name;
    -- Indexes made before fast update was turned off: turn it off and empty
    -- the list they hold (turning it off alone leaves it to the next vacuum).
    if not exists (select 1 from pg_class where oid = idx and 'fastupdate=off' = any(coalesce(reloptions, '{}'))) then
        execute format('alter index %s set (fastupdate = off)', idx);
        perform gin_clean_pending_list(idx);
    end if;
end $$;

create or replace function outflow_index_new_ferretdb_tables() returns event_trigger
language plpgsql as $$
declare
    created record;
begin
    for created in select objid from pg_event_trigger_ddl_commands() where command_tag = 'CREATE TABLE' and object_type = 'table' loop
        perform outflow_index_ferretdb_table(created.objid::regclass);
    end loop;
end $$;

drop event trigger if exists outflow_index_new_ferretdb_tables;
create event trigger outflow_index_new_ferretdb_tables on ddl_command_end
    when tag in ('CREATE TABLE') execute function outflow_index_new_ferretdb_tables();

select outflow_index_ferretdb_table(c.oid::regclass)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema');

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

set client_min_messages = warning;

create or replace function outflow_index_ferretdb_table(tbl regclass) returns void
language plpgsql as $$
declare
    name text := left((select relname from pg_class where oid = tbl), 50) || '_id_gin';
begin
    if exists (select 1 from pg_attribute where attrelid = tbl and attname = '_jsonb' and not attisdropped) then
        execute format('create index if not exists %I on %s using gin ((_jsonb->''_id'') jsonb_path_ops)', name, tbl);
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

-- One database given to its service (after roles.sql): :owner (the writer, the
-- registry, FerretDB) creates and owns the tables; :consumer, if set, reads
-- and writes them; :reader, if set, only reads them. Run by scripts/up as the
-- administrator in that database at every PostgreSQL start; idempotent.

set client_min_messages = warning;

grant usage, create on schema public to :"owner";

-- What an earlier Outflow created as the administrator moves to the owner
-- (tables, views and sequences; indexes and column sequences move with their
-- tables), or its next migration could not alter it (the registry's recreate a
-- view). FerretDB keeps a schema per MongoDB database.
select format('alter schema %I owner to %I', nspname, :'owner')
from pg_namespace
where nspname not in ('public', 'information_schema') and nspname not like 'pg\_%'
  and nspowner <> (select oid from pg_roles where rolname = :'owner')
\gexec
select format('alter %s %I.%I owner to %I',
              case c.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence' else 'table' end,
              n.nspname, c.relname, :'owner')
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\_%'
  and c.relkind in ('r', 'p', 'v', 'm', 'S')
  and c.relowner <> (select oid from pg_roles where rolname = :'owner')
  -- a sequence that belongs to a column moves with its table
  and not (c.relkind = 'S' and exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i')))
\gexec

\if :{?consumer}
grant usage on schema public to :"consumer";
alter default privileges for role :"owner" in schema public grant select, insert, update, delete on tables to :"consumer";
alter default privileges for role :"owner" in schema public grant usage, select on sequences to :"consumer";
grant select, insert, update, delete on all tables in schema public to :"consumer";
grant usage, select on all sequences in schema public to :"consumer";
\endif

\if :{?reader}
grant usage on schema public to :"reader";
alter default privileges for role :"owner" in schema public grant select on tables to :"reader";
grant select on all tables in schema public to :"reader";
\endif

-- One database given to its service (after roles.sql): :owner (the writer, the
-- registry, FerretDB) creates and owns the tables; :consumer, if set, reads
-- and writes them; :reader, if set, only reads them. Run by scripts/up as the
-- administrator in that database at every PostgreSQL start; idempotent.

set client_min_messages = warning;

grant usage, create on schema public to :"owner";

-- What an earlier Outflow created as the administrator moves to the owner
-- (sequences and indexes move with their tables), or its next migration could
-- not alter it. FerretDB keeps a schema per MongoDB database.
select format('alter schema %I owner to %I', nspname, :'owner')
from pg_namespace
where nspname not in ('public', 'information_schema') and nspname not like 'pg\_%'
  and nspowner <> (select oid from pg_roles where rolname = :'owner')
\gexec
select format('alter table %I.%I owner to %I', schemaname, tablename, :'owner')
from pg_tables
where schemaname not in ('pg_catalog', 'information_schema') and tableowner <> :'owner'
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

-- Least privilege (DESIGN.md, Trust): one login role per service, none of them
-- superuser, none able to create databases or roles. Run by scripts/up as the
-- administrator, in the `postgres` database, at every PostgreSQL start, the
-- passwords read from psql's environment (never from its command line);
-- idempotent, and a changed password takes effect at the next start.
--
-- | role                         | may                                                     |
-- |------------------------------|---------------------------------------------------------|
-- | outflow_<context>            | the writer: owns its database's tables (its migrations) |
-- | outflow_<context>_consumer   | the saga consumer: reads and writes those tables        |
-- | outflow_debezium             | REPLICATION; SELECT on the outbox and heartbeat tables  |
-- |                              | (granted by scripts/register-connectors, which also     |
-- |                              | creates the publications)                               |
-- | outflow_registry             | owns the registry database's tables                     |
-- | :mongo_user (outflow_views)  | FerretDB's login: owns the views database's tables      |
-- | outflow_monitor              | reads the orders database and the replication slots     |
--
-- Every database refuses connections from roles not named here (CONNECT is
-- revoked from PUBLIC), so no service reaches another service's database.

set client_min_messages = warning;

\getenv mongo_user OUTFLOW_MONGO_USER
\getenv orders_password OUTFLOW_PG_ORDERS_PASSWORD
\getenv orders_consumer_password OUTFLOW_PG_ORDERS_CONSUMER_PASSWORD
\getenv inventory_password OUTFLOW_PG_INVENTORY_PASSWORD
\getenv inventory_consumer_password OUTFLOW_PG_INVENTORY_CONSUMER_PASSWORD
\getenv payments_password OUTFLOW_PG_PAYMENTS_PASSWORD
\getenv payments_consumer_password OUTFLOW_PG_PAYMENTS_CONSUMER_PASSWORD
\getenv shipping_password OUTFLOW_PG_SHIPPING_PASSWORD
\getenv shipping_consumer_password OUTFLOW_PG_SHIPPING_CONSUMER_PASSWORD
\getenv notifications_password OUTFLOW_PG_NOTIFICATIONS_PASSWORD
\getenv notifications_consumer_password OUTFLOW_PG_NOTIFICATIONS_CONSUMER_PASSWORD
\getenv debezium_password OUTFLOW_PG_DEBEZIUM_PASSWORD
\getenv registry_password OUTFLOW_PG_REGISTRY_PASSWORD
\getenv mongo_password OUTFLOW_MONGO_PASSWORD
\getenv monitor_password OUTFLOW_PG_MONITOR_PASSWORD

select format('create role %I', name)
from unnest(array['outflow_orders', 'outflow_orders_consumer', 'outflow_inventory', 'outflow_inventory_consumer',
                  'outflow_payments', 'outflow_payments_consumer', 'outflow_shipping', 'outflow_shipping_consumer',
                  'outflow_notifications', 'outflow_notifications_consumer',
                  'outflow_debezium', 'outflow_registry',
                  :'mongo_user', 'outflow_monitor']) as name
where not exists (select 1 from pg_roles where rolname = name)
\gexec

alter role outflow_orders with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'orders_password';
alter role outflow_orders_consumer with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'orders_consumer_password';
alter role outflow_inventory with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'inventory_password';
alter role outflow_inventory_consumer with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'inventory_consumer_password';
alter role outflow_payments with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'payments_password';
alter role outflow_payments_consumer with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'payments_consumer_password';
alter role outflow_shipping with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'shipping_password';
alter role outflow_shipping_consumer with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'shipping_consumer_password';
alter role outflow_notifications with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'notifications_password';
alter role outflow_notifications_consumer with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'notifications_consumer_password';
-- Logical decoding needs REPLICATION; nothing else is granted at cluster level.
alter role outflow_debezium with login nosuperuser nocreatedb nocreaterole replication nobypassrls password :'debezium_password';
alter role outflow_registry with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'registry_password';
alter role :"mongo_user" with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'mongo_password';
alter role outflow_monitor with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'monitor_password';

revoke connect, temporary on database orders, inventory, payments, shipping, notifications, registry, views from public;
grant connect on database orders to outflow_orders, outflow_orders_consumer, outflow_debezium, outflow_monitor;
grant connect on database inventory to outflow_inventory, outflow_inventory_consumer, outflow_debezium;
grant connect on database payments to outflow_payments, outflow_payments_consumer, outflow_debezium;
grant connect on database shipping to outflow_shipping, outflow_shipping_consumer, outflow_debezium;
-- No connector reads it: webhooks and their deliveries are not saga events.
grant connect on database notifications to outflow_notifications, outflow_notifications_consumer;
grant connect on database registry to outflow_registry;
-- FerretDB keeps one PostgreSQL schema per MongoDB database.
grant connect, create on database views to :"mongo_user";

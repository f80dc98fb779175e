-- The order's trace (the W3C traceparent of the request that placed it): the
-- monitor links a stuck saga to its trace in Jaeger.
alter table orders add column traceparent text;

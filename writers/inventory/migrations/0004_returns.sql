-- A confirmed order whose delivery failed gives its goods back: its COMMITTED
-- reservation becomes RETURNED and each line's quantity is on hand again.
alter table reservations drop constraint reservations_status_check;
alter table reservations add constraint reservations_status_check check (status in ('RESERVED', 'REJECTED', 'RELEASED', 'COMMITTED', 'RETURNED'));

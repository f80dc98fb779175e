//! Every metric Outflow exports, with its unit and the HELP text Prometheus
//! shows: one list, described in every process that installs a recorder, so
//! that `promtool check metrics` finds no metric without help on any
//! `/metrics` (a process renders the descriptions of the metrics it has only).

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Describes every metric to the installed recorder; call it after installing one.
pub fn describe() {
    describe_http();
    describe_consumers();
    describe_views();
    describe_live();
    describe_webhooks();
    describe_monitor();
}

fn describe_webhooks() {
    describe_counter!(
        "webhook_deliveries_total",
        Unit::Count,
        "Webhook delivery attempts, by outcome: delivered, failed (retried later) or dead (parked after the last attempt)."
    );
    describe_histogram!("webhook_delivery_seconds", Unit::Seconds, "Time one POST of a webhook delivery took, until the answer or the timeout.");
    describe_gauge!(
        "webhook_deliveries_dead",
        Unit::Count,
        "Webhook deliveries parked as dead letters (DEAD), waiting for an admin's replay; sampled every 15 s."
    );
}

fn describe_live() {
    describe_gauge!("query_live_streams", Unit::Count, "Server-Sent Event streams the query service holds open.");
    describe_gauge!("query_live_documents", Unit::Count, "View documents the query service watches for its open streams, by collection.");
    describe_counter!("query_live_messages_total", Unit::Count, "Messages sent on the query service's streams, by stream (order, availability).");
    describe_counter!(
        "query_live_dropped_total",
        Unit::Count,
        "Streams ended because their client did not keep up (it reconnects with Last-Event-ID), by collection."
    );
}

fn describe_http() {
    describe_counter!("http_requests_total", Unit::Count, "HTTP requests answered, by service, route, method and status.");
    describe_histogram!("http_request_duration_seconds", Unit::Seconds, "Time from a request's arrival to its response, by service, route, method and status.");
    describe_counter!(
        "http_connections_refused_total",
        Unit::Count,
        "Connections closed at once because the service already held its maximum of open connections."
    );
    describe_counter!("http_rate_limited_total", Unit::Count, "Requests refused with 429 by a rate limit, by whose limit (customer or client).");
    describe_counter!("orders_placed_total", Unit::Count, "Orders placed by the orders writer (a replayed idempotency key is not counted again).");
}

fn describe_consumers() {
    describe_counter!(
        "consumer_events_total",
        Unit::Count,
        "Events a consumer group finished, by group, event type and outcome (applied, duplicate, skipped)."
    );
    describe_histogram!(
        "consumer_handle_seconds",
        Unit::Seconds,
        "Time from decoding an event to its handler's end, retries included, by group and event type."
    );
    describe_counter!("consumer_retries_total", Unit::Count, "Transient failures of a handler or the registry that were retried after a backoff, by group.");
    describe_counter!("consumer_dead_letters_total", Unit::Count, "Records copied to a dead-letter topic, by group, source topic and kind of failure.");
    describe_counter!("consumer_rebalances_total", Unit::Count, "Partition assignments and revocations a consumer went through, by group and kind.");
    describe_counter!(
        "consumer_client_restarts_total",
        Unit::Count,
        "Times a consumer replaced its Kafka client after being out of its group too long, by group."
    );
    describe_gauge!("consumer_paused_partitions", Unit::Count, "Partitions a consumer paused because their queue of records was full, by group.");
}

fn describe_views() {
    describe_counter!("view_changes_total", Unit::Count, "Changes folded into view documents, by collection.");
    describe_counter!("view_document_writes_total", Unit::Count, "View documents written (one write can carry several changes), by collection.");
    describe_counter!("view_rollbacks_total", Unit::Count, "Late writes that had put an older view document back, found and undone.");
    describe_histogram!("view_commit_to_view_seconds", Unit::Seconds, "Time from an event's commit in its service's database to its change in the views.");
}

fn describe_monitor() {
    describe_gauge!("outflow_monitor_sample_seconds", Unit::Seconds, "How long the monitor's last sample of every source took.");
    describe_gauge!(
        "outflow_monitor_source_up",
        "1 when the monitor's last sample of this source (kafka, connect, postgres, sagas, latency) succeeded, else 0."
    );
    describe_gauge!(
        "outflow_consumer_group_lag_records",
        Unit::Count,
        "Records a consumer group has yet to consume: the high watermarks minus its committed offsets, summed over its partitions."
    );
    describe_gauge!("outflow_consumer_group_members", Unit::Count, "Members of a consumer group.");
    describe_gauge!("outflow_consumer_lag_records", Unit::Count, "Records a consumer group has yet to consume on one partition.");
    describe_gauge!("outflow_consumer_committed_offset", "The offset a consumer group committed on one partition.");
    describe_gauge!("outflow_partition_high_watermark_offset", "The high watermark (next offset to be written) of one partition.");
    describe_gauge!("outflow_dlq_records", Unit::Count, "Records kept on a dead-letter topic.");
    describe_gauge!("outflow_connector_running", "1 when the Kafka Connect connector is RUNNING, else 0.");
    describe_gauge!("outflow_connector_task_running", "1 when the connector's task is RUNNING, else 0.");
    describe_gauge!("outflow_connect_worker_up", "1 when the Kafka Connect worker's REST API answers, else 0.");
    describe_gauge!("outflow_connect_worker_tasks", Unit::Count, "Connector tasks the Kafka Connect worker runs.");
    describe_gauge!("outflow_kafka_brokers", Unit::Count, "Kafka brokers registered with the controller (up).");
    describe_gauge!("outflow_kafka_brokers_expected", Unit::Count, "Kafka brokers in the monitor's bootstrap list.");
    describe_gauge!("outflow_kafka_under_replicated_partitions", Unit::Count, "Partitions with fewer in-sync replicas than assigned replicas.");
    describe_gauge!("outflow_kafka_offline_partitions", Unit::Count, "Partitions without a leader.");
    describe_gauge!("outflow_kafka_broker_leader_partitions", Unit::Count, "Partitions the broker leads.");
    describe_gauge!("outflow_slot_active", "1 when a walsender is attached to the replication slot, else 0.");
    describe_gauge!(
        "outflow_slot_retained_wal_bytes",
        Unit::Bytes,
        "WAL the replication slot keeps from being removed (current WAL position minus its restart_lsn)."
    );
    describe_gauge!(
        "outflow_slot_lag_bytes",
        Unit::Bytes,
        "WAL written but not yet confirmed by the slot's consumer (current WAL position minus its confirmed_flush_lsn)."
    );
    describe_gauge!("outflow_sagas", Unit::Count, "Orders by saga state.");
    describe_gauge!("outflow_sagas_stuck", Unit::Count, "Orders still PENDING after the stuck threshold.");
    describe_gauge!("outflow_sagas_oldest_in_flight_seconds", Unit::Seconds, "Age of the oldest PENDING order.");
    describe_gauge!("outflow_commit_to_view_seconds", Unit::Seconds, "Commit-to-view latency percentiles (50, 90, 99), read from the views consumer's histogram, by percentile and window (recent: the last minute; since_start).");
}

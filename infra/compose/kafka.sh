#!/usr/bin/env bash
# The broker under compose (apache/kafka image), as scripts/up runs it:
# infra/kafka/server.properties with one more SASL/SCRAM listener for the host
# (127.0.0.1:59092) beside the one the other containers use (kafka:9092), the
# KRaft log formatted at the first start with the broker's and the
# administrator's logins.
set -euo pipefail
props=/tmp/server.properties
sed -e "s|@OUTFLOW_KAFKA_BROKER_PASSWORD@|$OUTFLOW_KAFKA_BROKER_PASSWORD|g" \
    -e "s|@OUTFLOW_KAFKA_ADMIN_USER@|$OUTFLOW_KAFKA_ADMIN_USER|g" \
    -e "s|@OUTFLOW_STATE@/kafka/data|/var/lib/kafka/data|" \
    -e "s|^controller.quorum.voters=.*|controller.quorum.voters=1@kafka:9093|" \
    -e "s|^listeners=.*|listeners=CLIENT://:9092,HOST://:59092,CONTROLLER://:9093|" \
    -e "s|^advertised.listeners=.*|advertised.listeners=CLIENT://kafka:9092,HOST://127.0.0.1:59092|" \
    -e "s|^listener.security.protocol.map=.*|listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,HOST:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT|" \
    /outflow/kafka/server.properties > "$props"
echo 'listener.name.host.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;' >> "$props"
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "${CLUSTER_ID:-outflow-compose-cluster-1}" -c "$props" \
  --add-scram "SCRAM-SHA-512=[name=outflow-broker,password=$OUTFLOW_KAFKA_BROKER_PASSWORD]" \
  --add-scram "SCRAM-SHA-512=[name=$OUTFLOW_KAFKA_ADMIN_USER,password=$OUTFLOW_KAFKA_ADMIN_PASSWORD]"
exec /opt/kafka/bin/kafka-server-start.sh "$props"

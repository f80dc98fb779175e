#!/usr/bin/env bash
# Run once under compose after the broker (apache/kafka image, which has no
# compiler for infra/kafka/Provision.java): every principal's SCRAM login and
# the ACLs of infra/kafka/acls.txt, with Kafka's own tools and the
# administrator's login. Idempotent, as scripts/up's kafka_logins.
set -euo pipefail
admin=/tmp/admin.properties
printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";\n' \
  "$OUTFLOW_KAFKA_ADMIN_USER" "$OUTFLOW_KAFKA_ADMIN_PASSWORD" > "$admin"
bin=/opt/kafka/bin
until "$bin/kafka-broker-api-versions.sh" --bootstrap-server kafka:9092 --command-config "$admin" >/dev/null 2>&1; do sleep 2; done
login() {
  "$bin/kafka-configs.sh" --bootstrap-server kafka:9092 --command-config "$admin" --alter \
    --entity-type users --entity-name "$1" --add-config "SCRAM-SHA-512=[password=$2]"
}
login "$OUTFLOW_KAFKA_USER" "$OUTFLOW_KAFKA_PASSWORD"
login outflow-connect-worker "$OUTFLOW_KAFKA_CONNECT_PASSWORD"
login outflow-monitor "$OUTFLOW_KAFKA_MONITOR_PASSWORD"
for group in orders inventory payments shipping views notifications; do
  password="OUTFLOW_KAFKA_$(tr 'a-z' 'A-Z' <<< "$group")_PASSWORD"
  login "outflow-$group" "${!password}"
done
sed "s|@OUTFLOW_KAFKA_USER@|$OUTFLOW_KAFKA_USER|" /outflow/kafka/acls.txt | grep -v '^#' | while read -r principal type name pattern operations; do
  [ -n "$principal" ] || continue
  ops=(); for op in ${operations//,/ }; do ops+=(--operation "$op"); done
  "$bin/kafka-acls.sh" --bootstrap-server kafka:9092 --command-config "$admin" --add --allow-principal "User:$principal" \
    "--$type" "$name" --resource-pattern-type "$pattern" "${ops[@]}" >/dev/null
done
echo "kafka-logins: done"

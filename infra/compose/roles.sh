#!/usr/bin/env bash
# Run by the postgres image at its first start (docker-entrypoint-initdb.d):
# the service roles and each database given to its service, as scripts/up
# does (infra/postgres/roles.sql, owner.sql). The passwords come from the
# container's environment.
set -euo pipefail
sql=/outflow/postgres
psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER")
"${psql[@]}" -d postgres -q -f "$sql/roles.sql"
for context in orders inventory payments shipping notifications; do
  reader=(); [ "$context" = orders ] && reader=(-v reader=outflow_monitor)
  "${psql[@]}" -d "$context" -q -v owner="outflow_$context" -v consumer="outflow_${context}_consumer" "${reader[@]}" -f "$sql/owner.sql"
done
"${psql[@]}" -d registry -q -v owner=outflow_registry -f "$sql/owner.sql"
"${psql[@]}" -d views -q -v owner="$OUTFLOW_MONGO_USER" -f "$sql/owner.sql"

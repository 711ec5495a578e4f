#!/bin/sh
# One-shot job, run by docker-compose.temporal.yml in the temporalio/admin-tools image once the
# server reports healthy: registers the namespace the backupctl worker uses. Retries until the
# frontend answers (it can report healthy a moment before namespace calls succeed) and exits 0
# when the namespace exists, so it is safe on every `docker compose up`.
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS must be set (host:port of the frontend)}"
NAMESPACE=${NAMESPACE:-default}
# How long Temporal keeps the history of a finished backup workflow.
RETENTION=${NAMESPACE_RETENTION:-720h}
ATTEMPTS=${ATTEMPTS:-60}
SLEEP_SECONDS=${SLEEP_SECONDS:-2}

attempt=1
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
  if [ "$attempt" -ge "$ATTEMPTS" ]; then
    echo "create-namespace: no healthy Temporal at $TEMPORAL_ADDRESS after $ATTEMPTS attempts" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep "$SLEEP_SECONDS"
done

attempt=1
while :; do
  if temporal operator namespace describe --namespace "$NAMESPACE" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; then
    echo "create-namespace: namespace $NAMESPACE exists"
    exit 0
  fi
  if temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION" \
    --description 'backupctl workflows' --address "$TEMPORAL_ADDRESS"; then
    echo "create-namespace: namespace $NAMESPACE created (retention $RETENTION)"
    exit 0
  fi
  if [ "$attempt" -ge "$ATTEMPTS" ]; then
    echo "create-namespace: could not create namespace $NAMESPACE after $ATTEMPTS attempts" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep "$SLEEP_SECONDS"
done

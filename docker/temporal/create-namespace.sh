#!/bin/sh
# One-shot (admin-tools image): wait until the Temporal server serves, create the namespace Kindly
# uses when it is missing, and wait until the namespace is usable (search attributes can be listed,
# which `kindly setup` needs next). Gives up after about two minutes.
set -eu

: "${TEMPORAL_ADDRESS:?}" "${NAMESPACE:?}"
retention="${NAMESPACE_RETENTION:-720h}"

attempts=0
retry() {
    attempts=$((attempts + 1))
    if [ "$attempts" -ge 120 ]; then
        echo "giving up: $1" >&2
        exit 1
    fi
    sleep 1
}

until temporal operator cluster health --address "$TEMPORAL_ADDRESS" 2>/dev/null | grep -q SERVING; do
    retry "Temporal at $TEMPORAL_ADDRESS is not serving"
done

if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1; then
    echo "namespace $NAMESPACE exists"
else
    temporal operator namespace create --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" \
        --retention "$retention" --description "Kindly's overdue-account workflows"
    echo "namespace $NAMESPACE created (retention $retention)"
fi

until temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1; do
    retry "namespace $NAMESPACE is not ready"
done
echo "namespace $NAMESPACE is ready"

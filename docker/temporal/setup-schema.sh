#!/bin/sh
# One-shot (admin-tools image): create Temporal's databases on PostgreSQL and bring their schemas to
# this release's version. Safe to run at every start: existing databases are kept, and only schema
# versions newer than the stored one are applied.
set -eu

: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
port="${DB_PORT:-5432}"
schema=/etc/temporal/schema/postgresql/v12

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$port" -u "$POSTGRES_USER" "$@"
}

for database in temporal temporal_visibility; do
    case "$database" in
        temporal) versioned="$schema/temporal/versioned" ;;
        *) versioned="$schema/visibility/versioned" ;;
    esac
    sql_tool --db "$database" create
    sql_tool --db "$database" setup-schema -v 0.0
    sql_tool --db "$database" update-schema -d "$versioned"
done
echo "Temporal schema is up to date"

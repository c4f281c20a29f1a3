#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d): a role for
# Temporal (it creates its own two databases, so it may create databases) and a role and database
# for Kindly's application tables. Passwords come from the container's environment (docker/.env).
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v temporal_password="$TEMPORAL_DB_PASSWORD" \
    -v kindly_password="$KINDLY_DB_PASSWORD" <<'SQL'
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
CREATE ROLE kindly LOGIN PASSWORD :'kindly_password';
CREATE DATABASE kindly OWNER kindly;
SQL

#!/bin/sh
# One-shot schema job, run by docker-compose.temporal.yml in the temporalio/admin-tools image
# (whose own entrypoint would just sleep). Creates Temporal's two PostgreSQL databases and
# brings each schema up to the version shipped in this image, which must be the server's
# version: keep the admin-tools and server image tags on the same Temporal release.
#
# Every step is idempotent (create-database ignores an existing database, setup-schema -v 0.0
# skips a database that already has a version, update-schema applies only newer versions),
# so the job runs on every `docker compose up` and is how a server upgrade migrates the schema.
#
# temporal-sql-tool reads its connection from SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER and
# SQL_PASSWORD, so the password never appears on a command line.
set -eu

: "${SQL_PLUGIN:?SQL_PLUGIN must be set (postgres12)}"
: "${SQL_HOST:?SQL_HOST must be set}"
: "${SQL_USER:?SQL_USER must be set}"
: "${DBNAME:=temporal}"
: "${VISIBILITY_DBNAME:=temporal_visibility}"
# The postgres12 plugin's schemas, as the admin-tools image ships them (/etc/temporal/schema
# is the temporal repository's schema/ folder).
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12/temporal/versioned
VISIBILITY_SCHEMA_DIR=/etc/temporal/schema/postgresql/v12/visibility/versioned

for dir in "$SCHEMA_DIR" "$VISIBILITY_SCHEMA_DIR"; do
  if [ ! -d "$dir" ]; then
    echo "setup-schema: $dir is not in this admin-tools image (does it ship the postgres12 schemas?)" >&2
    exit 1
  fi
done

setup() {
  db=$1
  dir=$2
  echo "setup-schema: database $db on $SQL_HOST:${SQL_PORT:-5432}"
  temporal-sql-tool --db "$db" create-database
  temporal-sql-tool --db "$db" setup-schema -v 0.0
  temporal-sql-tool --db "$db" update-schema -d "$dir"
}

setup "$DBNAME" "$SCHEMA_DIR"
setup "$VISIBILITY_DBNAME" "$VISIBILITY_SCHEMA_DIR"
echo 'setup-schema: done'

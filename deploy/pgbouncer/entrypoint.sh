#!/bin/sh
# Writes PgBouncer's configuration from the environment, then runs it in the foreground.
set -eu
dir=/tmp/pgbouncer
mkdir -p "$dir"
: "${POSTGRES_HOST:=postgres}" "${POSTGRES_PORT:=5432}" "${POSTGRES_DB:=credits}" "${POSTGRES_USER:=credits}"
: "${PGBOUNCER_POOL_SIZE:=20}" "${PGBOUNCER_MAX_CLIENT_CONN:=1000}"
printf '"%s" "%s"\n' "$POSTGRES_USER" "$POSTGRES_PASSWORD" > "$dir/userlist.txt"
cat > "$dir/pgbouncer.ini" <<INI
[databases]
$POSTGRES_DB = host=$POSTGRES_HOST port=$POSTGRES_PORT dbname=$POSTGRES_DB

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
max_prepared_statements = 200
default_pool_size = $PGBOUNCER_POOL_SIZE
max_client_conn = $PGBOUNCER_MAX_CLIENT_CONN
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
INI
exec pgbouncer "$dir/pgbouncer.ini"

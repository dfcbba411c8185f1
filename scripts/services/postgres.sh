#!/usr/bin/env bash
# PostgreSQL on 127.0.0.1 from the Debian package, with its own cluster in the state folder
# (no systemd unit, no pg_ctlcluster). As root, see postgres_cluster_dir for an exception.
#
# usage: postgres.sh install|start|stop|status
#   POSTGRES_PORT       TCP port (default 5432)
#   POSTGRES_USER       login role created on start (default graphmem)
#   POSTGRES_PASSWORD   its password, set on every start (default graphmem-test-password,
#                       for test servers only)
#   POSTGRES_DB         database owned by that role, created on start (default graphmem)
#
# PostgreSQL refuses to run as root, so as root the server runs as the "postgres" system user,
# which owns the cluster folder (see postgres_cluster_dir). TCP clients on 127.0.0.1 log in with
# a password (SCRAM-SHA-256). Unix-socket clients in the cluster folder's run/ log in by peer
# authentication.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
svc_init postgres

PORT="$POSTGRES_PORT"
# psql reads these three from the environment when it creates the role and database.
export POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB

# Print the folder of the cluster's data, socket and log. That is the state folder, unless this
# script runs as root and the postgres user cannot reach the state folder because a parent is
# closed to other users (a checkout under /root, a `mktemp -d` folder). Then it is a folder under
# /var/tmp named after the state folder's path, and the state folder gets a link "cluster" to it.
postgres_cluster_dir() {
    if [[ "$(id -u)" != 0 ]] || ! id postgres >/dev/null 2>&1; then
        echo "$SVC_DIR"
        return
    fi

    if [[ -L "$SVC_DIR/cluster" ]]; then
        readlink "$SVC_DIR/cluster"
        return
    fi

    mkdir -p "$SVC_DIR"
    if runuser -u postgres -- test -x "$SVC_DIR"; then
        echo "$SVC_DIR"
    else
        local path_digest
        path_digest="$(printf '%s' "$SVC_DIR" | sha256sum | cut -c 1-16)"
        echo "/var/tmp/graphmem-services/$path_digest/postgres"
    fi
}

CLUSTER_DIR="$(postgres_cluster_dir)"
DATA_DIR="$CLUSTER_DIR/data"
SOCKET_DIR="$CLUSTER_DIR/run"
LOG_FILE="$CLUSTER_DIR/postgres.log"
PORT_FILE="$SVC_DIR/port"
# Included from postgresql.conf and rewritten on every start, so POSTGRES_PORT takes effect.
LOCAL_CONF="$DATA_DIR/graphmem-services.conf"

# Print the newest PostgreSQL bin folder of the Debian layout, else the folder of initdb on
# PATH, else nothing.
postgres_bin_dir() {
    local dir
    dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)"
    if [[ -n "$dir" && -x "$dir/initdb" ]]; then
        echo "$dir"
    elif command -v initdb >/dev/null; then
        dirname "$(command -v initdb)"
    fi
}

# Run a command as the "postgres" system user when this script runs as root, else as the
# current user. The working folder is the cluster folder, which that user can read.
postgres_as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        (cd "$CLUSTER_DIR" && runuser -u postgres -- "$@")
    else
        (cd "$CLUSTER_DIR" && "$@")
    fi
}

# Print the postmaster pid of this state folder's cluster when it is running, else nothing.
postgres_running_pid() {
    local pid
    pid="$(svc_read_pid "$DATA_DIR/postmaster.pid" 2>/dev/null)"
    if svc_pid_matches "$pid" "-D $DATA_DIR"; then
        echo "$pid"
    fi
}

postgres_recorded_port() {
    if [[ -f "$PORT_FILE" ]]; then
        cat "$PORT_FILE"
    else
        echo "$PORT"
    fi
}

postgres_install() {
    if [[ -z "$(postgres_bin_dir)" ]]; then
        svc_apt_install postgresql
    fi
    [[ -n "$(postgres_bin_dir)" ]] || svc_die "initdb not found after installing postgresql. Put the PostgreSQL bin folder on PATH"
}

# Create the state and cluster folders, the cluster folder owned by the server's user when
# running as root.
postgres_prepare_dir() {
    mkdir -p "$SVC_DIR"
    if [[ "$CLUSTER_DIR" != "$SVC_DIR" && ! -L "$SVC_DIR/cluster" ]]; then
        # Without the link, the state folder was deleted, and with it this cluster's data.
        rm -rf "$CLUSTER_DIR"
        ln -s "$CLUSTER_DIR" "$SVC_DIR/cluster"
        svc_log "user postgres cannot reach $SVC_DIR, so the cluster lives in $CLUSTER_DIR"
    fi
    mkdir -p "$CLUSTER_DIR"

    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || svc_die "system user postgres not found. Install the postgresql package, which creates it"
        chown postgres:postgres "$CLUSTER_DIR"
        if ! runuser -u postgres -- test -w "$CLUSTER_DIR"; then
            svc_die "user postgres cannot write to $CLUSTER_DIR. Set GRAPHMEM_SERVICES_HOME to a folder that it can reach, for example under /tmp"
        fi
    fi
}

# Create the cluster once. Local socket connections use peer authentication and TCP connections
# from 127.0.0.1 use SCRAM-SHA-256 passwords.
postgres_init_cluster() {
    local bin_dir="$1"
    if [[ -f "$DATA_DIR/PG_VERSION" ]]; then
        return 0
    fi

    svc_log "initdb $DATA_DIR"
    if ! postgres_as_owner "$bin_dir/initdb" -D "$DATA_DIR" --encoding=UTF8 --no-locale \
        --auth-local=peer --auth-host=scram-sha-256 >"$SVC_DIR/initdb.log" 2>&1; then
        svc_fail_start "initdb failed" "$SVC_DIR/initdb.log"
    fi
    echo "include_if_exists = '$(basename "$LOCAL_CONF")'" | postgres_as_owner tee -a "$DATA_DIR/postgresql.conf" >/dev/null
}

postgres_write_conf() {
    # PostgreSQL string literals escape a single quote by doubling it.
    local socket_dir="${SOCKET_DIR//\'/\'\'}"
    postgres_as_owner mkdir -p "$SOCKET_DIR"
    postgres_as_owner tee "$LOCAL_CONF" >/dev/null <<EOF
# Written by scripts/services/postgres.sh on every start. Edits here are overwritten.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$socket_dir'
EOF
}

# Create the login role and its database when missing, and set the role's password, reading
# the values from the environment so that the password never appears in a command line. The role
# may create databases, so that each test can use a database of its own.
postgres_create_role_and_db() {
    local bin_dir="$1"
    postgres_as_owner "$bin_dir/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PORT" -d postgres >>"$LOG_FILE" 2>&1 <<'EOF'
\getenv app_user POSTGRES_USER
\getenv app_password POSTGRES_PASSWORD
\getenv app_db POSTGRES_DB
SELECT format('CREATE ROLE %I LOGIN', :'app_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN CREATEDB PASSWORD %L', :'app_user', :'app_password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \gexec
EOF
}

postgres_start() {
    local pid
    pid="$(postgres_running_pid)"
    if [[ -n "$pid" ]]; then
        svc_log "already running, pid $pid, 127.0.0.1:$(postgres_recorded_port)"
        return 0
    fi

    svc_require_port_number "$PORT" POSTGRES_PORT
    svc_require_free_port "$PORT" POSTGRES_PORT
    postgres_install
    local bin_dir
    bin_dir="$(postgres_bin_dir)"
    # Installing the package creates the postgres user, and what that user can reach decides
    # where the cluster lives.
    CLUSTER_DIR="$(postgres_cluster_dir)"
    DATA_DIR="$CLUSTER_DIR/data"
    SOCKET_DIR="$CLUSTER_DIR/run"
    LOG_FILE="$CLUSTER_DIR/postgres.log"
    LOCAL_CONF="$DATA_DIR/graphmem-services.conf"
    postgres_prepare_dir
    postgres_init_cluster "$bin_dir"
    postgres_write_conf
    echo "$PORT" >"$PORT_FILE"

    svc_log "starting on 127.0.0.1:$PORT (log: $LOG_FILE)"
    local started_at=$SECONDS
    if ! postgres_as_owner "$bin_dir/pg_ctl" start -D "$DATA_DIR" -l "$LOG_FILE" -w -t "$SERVICES_START_TIMEOUT_S" >/dev/null; then
        postgres_as_owner "$bin_dir/pg_ctl" stop -D "$DATA_DIR" -m immediate >/dev/null 2>&1 || true
        svc_fail_start "pg_ctl start failed or timed out after ${SERVICES_START_TIMEOUT_S}s" "$LOG_FILE"
    fi

    if ! svc_wait_until 30 0.5 "" "$bin_dir/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
        postgres_as_owner "$bin_dir/pg_ctl" stop -D "$DATA_DIR" -m fast >/dev/null 2>&1 || true
        svc_fail_start "pg_isready got no response from 127.0.0.1:$PORT" "$LOG_FILE"
    fi
    if ! postgres_create_role_and_db "$bin_dir"; then
        postgres_as_owner "$bin_dir/pg_ctl" stop -D "$DATA_DIR" -m fast >/dev/null 2>&1 || true
        svc_fail_start "creating role $POSTGRES_USER and database $POSTGRES_DB failed" "$LOG_FILE"
    fi
    svc_log "ready after $((SECONDS - started_at))s, pid $(postgres_running_pid), database $POSTGRES_DB, user $POSTGRES_USER"
}

postgres_stop() {
    local pid
    pid="$(postgres_running_pid)"
    if [[ -z "$pid" ]]; then
        svc_log "not running"
        return 0
    fi

    svc_log "stopping pid $pid"
    local bin_dir
    bin_dir="$(postgres_bin_dir)"
    # Fast shutdown rolls back open transactions and disconnects clients, then checkpoints.
    if ! postgres_as_owner "$bin_dir/pg_ctl" stop -D "$DATA_DIR" -m fast -w -t "$SERVICES_STOP_TIMEOUT_S" >/dev/null; then
        svc_error "pg_ctl stop failed. Sending SIGTERM to pid $pid (see $LOG_FILE)"
        svc_terminate "$pid"
    fi
    svc_log "stopped"
}

postgres_status() {
    svc_print_status "$(postgres_running_pid)" "$(postgres_recorded_port)"
}

svc_dispatch postgres "install start stop status" "$@"

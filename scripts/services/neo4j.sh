#!/usr/bin/env bash
# Neo4j 5 Community on 127.0.0.1, run from jars that Maven copies into the state folder.
#
# usage: neo4j.sh install|start|stop|status
#   NEO4J_BOLT_PORT           Bolt port (default 7687)
#   GRAPHMEM_NEO4J_PASSWORD   password of the user "neo4j", set when the store is created
#                             (default graphmem-test-password, for test servers only)

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
svc_init neo4j

BOLT_PORT="$NEO4J_BOLT_PORT"
PASSWORD="$GRAPHMEM_NEO4J_PASSWORD"

# Neo4j 5 rejects passwords shorter than dbms.security.auth_minimum_password_length (default 8).
MIN_PASSWORD_LENGTH=8

LIB_DIR="$SVC_DIR/lib"
CONF_DIR="$SVC_DIR/conf"
PID_FILE="$SVC_DIR/neo4j.pid"
PORT_FILE="$SVC_DIR/port"
# Neo4j writes its own log to logs/neo4j.log (debug.log beside it has more detail). The JVM's
# stdout and stderr, where a crash before logging starts would show, go to console.log.
LOG_FILE="$SVC_DIR/logs/neo4j.log"
CONSOLE_LOG="$SVC_DIR/console.log"
ENTRY_POINT="org.neo4j.server.CommunityEntryPoint"
# Without these, Neo4j logs that its page cache and Netty fall back to slower code paths,
# because Java 17 denies them reflective access to java.nio buffers.
JVM_MODULE_FLAGS=(
    --add-opens=java.base/java.nio=ALL-UNNAMED
    --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens=java.base/java.io=ALL-UNNAMED
    -Dio.netty.tryReflectionSetAccessible=true
)

# Print the pid of this state folder's Neo4j when it is running, else nothing.
neo4j_running_pid() {
    local pid
    pid="$(svc_read_pid "$PID_FILE")"
    if svc_pid_matches "$pid" "$ENTRY_POINT --home-dir=$SVC_DIR"; then
        echo "$pid"
    fi
}

# Download the jars unless the server is running, because replacing the jars of a running JVM
# can break it. A changed pom takes effect at the next install or start after a stop.
neo4j_install() {
    if [[ -n "$(neo4j_running_pid)" ]]; then
        return 0
    fi
    svc_fetch_jars "$SERVICES_SCRIPTS_DIR/neo4j/pom.xml" "$LIB_DIR"
}

neo4j_write_conf() {
    mkdir -p "$CONF_DIR"
    cat >"$CONF_DIR/neo4j.conf" <<EOF
# Written by scripts/services/neo4j.sh on every start. Edits here are overwritten.
server.default_listen_address=127.0.0.1
server.default_advertised_address=127.0.0.1
server.bolt.listen_address=127.0.0.1:$BOLT_PORT
server.bolt.advertised_address=127.0.0.1:$BOLT_PORT
server.http.enabled=false
server.https.enabled=false
dbms.security.auth_enabled=true
server.memory.heap.initial_size=512m
server.memory.heap.max_size=1g
server.memory.pagecache.size=512m
dbms.usage_report.enabled=false
# NOTE: internal settings of Neo4j 5.26. With their 5 s defaults, stopping the Bolt server takes
# about 10 s. With 1 s, a stop takes about 3 s. Strict config validation rejects them if a later
# Neo4j version drops them.
internal.server.bolt.connection_shutdown_wait_time=1s
internal.server.bolt.thread_pool_shutdown_wait_time=1s
EOF
}

# Run Neo4j's admin tool on this state folder, with its output in the console log.
neo4j_admin() {
    NEO4J_HOME="$SVC_DIR" NEO4J_CONF="$CONF_DIR" \
        java -cp "$LIB_DIR/*" org.neo4j.cli.AdminTool "$@" >>"$CONSOLE_LOG" 2>&1
}

# Set the password of "neo4j" before the first start. Neo4j applies it when it creates the
# system database and ignores it afterwards.
neo4j_set_initial_password() {
    if [[ -d "$SVC_DIR/data/databases/system" ]]; then
        return 0
    fi
    if ((${#PASSWORD} < MIN_PASSWORD_LENGTH)); then
        svc_die "GRAPHMEM_NEO4J_PASSWORD is ${#PASSWORD} characters long; Neo4j requires at least $MIN_PASSWORD_LENGTH"
    fi

    svc_log "setting the initial password of user neo4j"
    if ! neo4j_admin dbms set-initial-password "$PASSWORD"; then
        svc_fail_start "neo4j-admin dbms set-initial-password failed" "$CONSOLE_LOG"
    fi
}

# Exit status 0 when Neo4j runs a query with the password, 1 while it is not reachable yet,
# and 3 when it rejects the password. Uses the Python driver from .venv when it is installed,
# else a Bolt handshake, which proves the server is up but not that the password is right.
neo4j_check_ready() {
    local python="python3"
    if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
        python="$REPO_ROOT/.venv/bin/python"
    fi

    NEO4J_CHECK_PORT="$BOLT_PORT" NEO4J_CHECK_PASSWORD="$PASSWORD" "$python" - <<'EOF'
import os
import socket
import sys

port = int(os.environ["NEO4J_CHECK_PORT"])
try:
    import neo4j
except ImportError:
    neo4j = None

if neo4j is None:
    # Bolt handshake: the magic preamble and four proposed versions, each as 00, range, minor,
    # major. "00080805" proposes 5.8 down to 5.0, then 4.4, then two empty slots.
    handshake = bytes.fromhex("6060B017" "00080805" "00000404" "00000000" "00000000")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(handshake)
            agreed = connection.recv(4)
    except OSError:
        sys.exit(1)
    sys.exit(0 if len(agreed) == 4 and agreed != b"\x00\x00\x00\x00" else 1)

# An auto-commit query in a session, because execute_query retries with backoff for up to 30 s
# while the server is still starting, which would delay the poll loop.
uri = f"bolt://127.0.0.1:{port}"
auth = ("neo4j", os.environ["NEO4J_CHECK_PASSWORD"])
try:
    with neo4j.GraphDatabase.driver(uri, auth=auth, connection_timeout=5) as driver:
        with driver.session() as session:
            session.run("RETURN 1").consume()
except neo4j.exceptions.AuthError:
    sys.exit(3)
except (neo4j.exceptions.ServiceUnavailable, neo4j.exceptions.SessionExpired, OSError):
    sys.exit(1)
EOF
}

# Wait until Neo4j runs a query. On a rejected password, an early exit or a timeout, stop
# the server and exit 1 with the log tails.
neo4j_wait_ready() {
    local pid="$1"
    local deadline=$((SECONDS + SERVICES_START_TIMEOUT_S))
    local status

    while ((SECONDS < deadline)); do
        status=0
        neo4j_check_ready >/dev/null 2>&1 || status=$?
        case "$status" in
            0) return 0 ;;
            3) svc_abort_start "$PID_FILE" "Neo4j rejected the password in GRAPHMEM_NEO4J_PASSWORD. The password was set when $SVC_DIR/data was created, so use that one or delete $SVC_DIR/data" "$LOG_FILE" ;;
        esac
        if ! kill -0 "$pid" 2>/dev/null; then
            svc_abort_start "$PID_FILE" "Neo4j exited during startup" "$CONSOLE_LOG" "$LOG_FILE"
        fi
        sleep 1
    done
    svc_abort_start "$PID_FILE" "Neo4j did not respond on bolt://127.0.0.1:$BOLT_PORT within ${SERVICES_START_TIMEOUT_S}s" "$CONSOLE_LOG" "$LOG_FILE"
}

neo4j_start() {
    local pid
    pid="$(neo4j_running_pid)"
    if [[ -n "$pid" ]]; then
        svc_log "already running, pid $pid, bolt://127.0.0.1:$(cat "$PORT_FILE")"
        return 0
    fi

    svc_require_port_number "$BOLT_PORT" NEO4J_BOLT_PORT
    svc_require_free_port "$BOLT_PORT" NEO4J_BOLT_PORT
    neo4j_install
    mkdir -p "$SVC_DIR"
    : >"$CONSOLE_LOG"
    neo4j_write_conf
    neo4j_set_initial_password

    svc_log "starting on bolt://127.0.0.1:$BOLT_PORT (log: $LOG_FILE)"
    NEO4J_HOME="$SVC_DIR" NEO4J_CONF="$CONF_DIR" svc_spawn "$PID_FILE" "$CONSOLE_LOG" \
        java -Xms512m -Xmx1g -XX:+UseG1GC "${JVM_MODULE_FLAGS[@]}" -cp "$LIB_DIR/*" "$ENTRY_POINT" \
        --home-dir="$SVC_DIR" --config-dir="$CONF_DIR"
    echo "$BOLT_PORT" >"$PORT_FILE"

    local started_at=$SECONDS
    neo4j_wait_ready "$(cat "$PID_FILE")"
    svc_log "ready after $((SECONDS - started_at))s, pid $(cat "$PID_FILE")"
}

neo4j_stop() {
    local pid
    pid="$(neo4j_running_pid)"
    if [[ -z "$pid" ]]; then
        rm -f "$PID_FILE"
        svc_log "not running"
        return 0
    fi

    svc_log "stopping pid $pid"
    svc_terminate "$pid"
    rm -f "$PID_FILE"
    svc_log "stopped"
}

neo4j_status() {
    local port=""
    [[ -f "$PORT_FILE" ]] && port="$(cat "$PORT_FILE")"
    svc_print_status "$(neo4j_running_pid)" "$port"
}

svc_dispatch neo4j "install start stop status" "$@"

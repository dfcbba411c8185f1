#!/usr/bin/env bash
# Redis on 127.0.0.1 from the Debian package, run directly on the state folder (no systemd unit).
#
# usage: redis.sh install|start|stop|status
#   REDIS_PORT   TCP port (default 6379)
#
# Redis writes no periodic snapshots (--save ''), but `stop` saves one, so data survives a
# stop and start. A crash loses what was written since the last stop.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
svc_init redis

PORT="$REDIS_PORT"

DATA_DIR="$SVC_DIR/data"
PID_FILE="$SVC_DIR/redis.pid"
PORT_FILE="$SVC_DIR/port"
LOG_FILE="$SVC_DIR/redis.log"

# Print the recorded port of the last start, else the configured one.
redis_recorded_port() {
    if [[ -f "$PORT_FILE" ]]; then
        cat "$PORT_FILE"
    else
        echo "$PORT"
    fi
}

# Print the pid of this state folder's Redis when it is running, else nothing. Redis rewrites
# its process title to "redis-server 127.0.0.1:PORT".
redis_running_pid() {
    local pid
    pid="$(svc_read_pid "$PID_FILE")"
    if svc_pid_matches "$pid" "redis-server 127.0.0.1:$(redis_recorded_port)"; then
        echo "$pid"
    fi
}

# Install the Debian packages of redis-server and redis-cli when either command is missing.
redis_install() {
    if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
        return 0
    fi
    svc_apt_install redis-server redis-tools
}

redis_ping() {
    [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == "PONG" ]]
}

redis_start() {
    local pid
    pid="$(redis_running_pid)"
    if [[ -n "$pid" ]]; then
        svc_log "already running, pid $pid, redis://127.0.0.1:$(redis_recorded_port)"
        return 0
    fi

    svc_require_port_number "$PORT" REDIS_PORT
    svc_require_free_port "$PORT" REDIS_PORT
    redis_install
    mkdir -p "$DATA_DIR"
    : >"$LOG_FILE"
    rm -f "$PID_FILE"

    svc_log "starting on redis://127.0.0.1:$PORT (log: $LOG_FILE)"
    echo "$PORT" >"$PORT_FILE"
    if ! redis-server --bind 127.0.0.1 --port "$PORT" --unixsocket '' --protected-mode yes \
        --dir "$DATA_DIR" --save '' --appendonly no \
        --daemonize yes --pidfile "$PID_FILE" --logfile "$LOG_FILE"; then
        svc_fail_start "redis-server failed to start" "$LOG_FILE"
    fi

    local status=0
    svc_wait_until "$SERVICES_START_TIMEOUT_S" 0.2 "" redis_ping "$PORT" || status=$?
    if ((status != 0)); then
        svc_abort_start "$PID_FILE" "Redis did not respond to PING on 127.0.0.1:$PORT within ${SERVICES_START_TIMEOUT_S}s" "$LOG_FILE"
    fi
    svc_log "ready, pid $(svc_read_pid "$PID_FILE")"
}

redis_stop() {
    local pid
    pid="$(redis_running_pid)"
    if [[ -z "$pid" ]]; then
        rm -f "$PID_FILE"
        svc_log "not running"
        return 0
    fi

    svc_log "stopping pid $pid (saving a snapshot to $DATA_DIR)"
    # A second signal during a shutdown makes Redis exit at once, so SIGTERM is only the fallback.
    if redis-cli -h 127.0.0.1 -p "$(redis_recorded_port)" shutdown save >/dev/null 2>&1 &&
        svc_wait_exit "$pid" "$SERVICES_STOP_TIMEOUT_S"; then
        :
    else
        svc_error "SHUTDOWN SAVE failed. Sending SIGTERM, which exits without saving (see $LOG_FILE)"
        svc_terminate "$pid"
    fi
    rm -f "$PID_FILE"
    svc_log "stopped"
}

redis_status() {
    svc_print_status "$(redis_running_pid)" "$(redis_recorded_port)"
}

svc_dispatch redis "install start stop status" "$@"

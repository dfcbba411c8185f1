#!/usr/bin/env bash
# A single-node Kafka 4 cluster in KRaft mode (one process is both broker and controller) on
# 127.0.0.1, run from jars that Maven copies into the state folder.
#
# usage: kafka.sh install|start|stop|status|tool CLASS [ARG...]
#   KAFKA_PORT              broker (PLAINTEXT) port (default 9092)
#   KAFKA_CONTROLLER_PORT   KRaft controller port (default 9093)

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
svc_init kafka

BROKER_PORT="$KAFKA_PORT"
CONTROLLER_PORT="$KAFKA_CONTROLLER_PORT"

LIB_DIR="$SVC_DIR/lib"
CONF_DIR="$SVC_DIR/conf"
DATA_DIR="$SVC_DIR/data"
PID_FILE="$SVC_DIR/kafka.pid"
PORT_FILE="$SVC_DIR/port"
LOG_FILE="$SVC_DIR/kafka.log"
SERVER_PROPERTIES="$CONF_DIR/server.properties"
MAIN_CLASS="kafka.Kafka"

# Print the pid of this state folder's broker when it is running, else nothing.
kafka_running_pid() {
    local pid
    pid="$(svc_read_pid "$PID_FILE")"
    if svc_pid_matches "$pid" "$MAIN_CLASS $SERVER_PROPERTIES"; then
        echo "$pid"
    fi
}

# Download the jars unless the server is running, because replacing the jars of a running JVM
# can break it. A changed pom takes effect at the next install or start after a stop.
kafka_install() {
    if [[ -n "$(kafka_running_pid)" ]]; then
        return 0
    fi
    svc_fetch_jars "$SERVICES_SCRIPTS_DIR/kafka/pom.xml" "$LIB_DIR"
}

# Write server.properties and the Log4j 2 configurations of the broker (INFO to stdout, which
# goes to kafka.log) and of the command-line tools (WARN to stderr, so stdout holds only results).
kafka_write_conf() {
    mkdir -p "$CONF_DIR"
    cat >"$SERVER_PROPERTIES" <<EOF
# Written by scripts/services/kafka.sh on every start. Edits here are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$BROKER_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$BROKER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Topics are created by graphmem itself, so a misspelt topic name fails instead of creating a topic.
auto.create.topics.enable=false
# One broker has nothing to wait for. The default 3 s delay slows every first consumer group join.
group.initial.rebalance.delay.ms=0
EOF

    cat >"$CONF_DIR/log4j2.properties" <<'EOF'
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
EOF

    cat >"$CONF_DIR/tools-log4j2.properties" <<'EOF'
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
EOF
}

# Run a Kafka command-line class (StorageTool, TopicCommand, ...) from the state folder's jars.
kafka_tool() {
    java -Xmx256m -cp "$LIB_DIR/*" -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.properties" "$@"
}

# Format the metadata log once, for a new cluster with a random cluster id.
kafka_format_storage() {
    if [[ -f "$DATA_DIR/meta.properties" ]]; then
        return 0
    fi

    local cluster_id
    cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid)"
    svc_log "formatting $DATA_DIR for cluster id $cluster_id"
    if ! kafka_tool kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$SERVER_PROPERTIES" >>"$LOG_FILE" 2>&1; then
        svc_fail_start "kafka-storage format failed" "$LOG_FILE"
    fi
}

# Succeed when the broker responds to a metadata request (a topic listing).
kafka_check_ready() {
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$BROKER_PORT" --list
}

# Wait for the listener port, then for a metadata response. On an early exit or a timeout, stop the
# broker and exit 1 with the log tail.
kafka_wait_ready() {
    local pid="$1"
    local status=0

    # The port check is cheap, so it polls often. Each metadata check starts a JVM (about 1 s of
    # CPU), so it runs only after the port is open.
    svc_wait_until "$SERVICES_START_TIMEOUT_S" 0.5 "$pid" svc_port_open "$BROKER_PORT" || status=$?
    if ((status == 0)); then
        svc_wait_until "$SERVICES_START_TIMEOUT_S" 1 "$pid" kafka_check_ready || status=$?
    fi

    case "$status" in
        0) return 0 ;;
        2) svc_abort_start "$PID_FILE" "Kafka exited during startup" "$LOG_FILE" ;;
        *) svc_abort_start "$PID_FILE" "Kafka did not respond to a metadata request on 127.0.0.1:$BROKER_PORT within ${SERVICES_START_TIMEOUT_S}s" "$LOG_FILE" ;;
    esac
}

kafka_start() {
    local pid
    pid="$(kafka_running_pid)"
    if [[ -n "$pid" ]]; then
        svc_log "already running, pid $pid, 127.0.0.1:$(cat "$PORT_FILE")"
        return 0
    fi

    svc_require_port_number "$BROKER_PORT" KAFKA_PORT
    svc_require_port_number "$CONTROLLER_PORT" KAFKA_CONTROLLER_PORT
    if ((BROKER_PORT == CONTROLLER_PORT)); then
        svc_die "KAFKA_PORT and KAFKA_CONTROLLER_PORT are both $BROKER_PORT. Set them to two different ports"
    fi
    svc_require_free_port "$BROKER_PORT" KAFKA_PORT
    svc_require_free_port "$CONTROLLER_PORT" KAFKA_CONTROLLER_PORT
    kafka_install
    mkdir -p "$SVC_DIR"
    : >"$LOG_FILE"
    kafka_write_conf
    kafka_format_storage

    svc_log "starting on 127.0.0.1:$BROKER_PORT, controller 127.0.0.1:$CONTROLLER_PORT (log: $LOG_FILE)"
    svc_spawn "$PID_FILE" "$LOG_FILE" \
        java -Xms256m -Xmx512m -XX:+UseG1GC -cp "$LIB_DIR/*" \
        -Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties" \
        "$MAIN_CLASS" "$SERVER_PROPERTIES"
    echo "$BROKER_PORT" >"$PORT_FILE"

    local started_at=$SECONDS
    kafka_wait_ready "$(cat "$PID_FILE")"
    svc_log "ready after $((SECONDS - started_at))s, pid $(cat "$PID_FILE")"
}

kafka_stop() {
    local pid
    pid="$(kafka_running_pid)"
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

kafka_status() {
    local port=""
    [[ -f "$PORT_FILE" ]] && port="$(cat "$PORT_FILE")"
    svc_print_status "$(kafka_running_pid)" "$port"
}

# `tool CLASS ARGS...` runs a Kafka command-line class against the jars in the state folder, for
# example: kafka.sh tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
if [[ "${1:-}" == "tool" ]]; then
    shift
    [[ -f "$CONF_DIR/tools-log4j2.properties" ]] || svc_die "no configuration in $CONF_DIR. Run kafka.sh start first"
    kafka_tool "$@"
    exit
fi

svc_dispatch kafka "install start stop status" "$@"

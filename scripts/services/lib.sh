# Shared helpers for the service scripts in this folder. Source it, then call svc_init NAME.
#
# Each service keeps its jars, data, configuration, pid file and log in
# ${GRAPHMEM_SERVICES_HOME:-<repo>/.services}/<name>/, and listens on 127.0.0.1 only.

set -euo pipefail

SERVICES_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SERVICES_SCRIPTS_DIR/../.." && pwd)"
SERVICES_HOME="${GRAPHMEM_SERVICES_HOME:-$REPO_ROOT/.services}"

# Ports and credentials of the four services. The passwords are defaults for local test
# servers only. Set the variables to other values for anything else.
NEO4J_BOLT_PORT="${NEO4J_BOLT_PORT:-7687}"
GRAPHMEM_NEO4J_PASSWORD="${GRAPHMEM_NEO4J_PASSWORD:-graphmem-test-password}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
REDIS_PORT="${REDIS_PORT:-6379}"
POSTGRES_PORT="${POSTGRES_PORT:-5432}"
POSTGRES_USER="${POSTGRES_USER:-graphmem}"
POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-graphmem-test-password}"
POSTGRES_DB="${POSTGRES_DB:-graphmem}"

# Seconds that `start` waits for a service to accept connections. Neo4j and Kafka start in under
# 10 s on an idle 2-core machine, but four JVMs and PostgreSQL starting together on a cold CI
# machine take several times longer, so the default leaves a wide margin.
SERVICES_START_TIMEOUT_S="${GRAPHMEM_SERVICES_TIMEOUT:-180}"

# Seconds that `stop` waits after SIGTERM before it sends SIGKILL. Neo4j checkpoints its store on
# shutdown, which takes a few seconds.
SERVICES_STOP_TIMEOUT_S=60

# Exit status of `status` for a stopped service, as in the LSB init-script convention.
SERVICES_EXIT_STOPPED=3

SVC_NAME=""
SVC_DIR=""

svc_init() {
    SVC_NAME="$1"
    SVC_DIR="$SERVICES_HOME/$SVC_NAME"
}

svc_log() {
    printf '[%s] %s\n' "$SVC_NAME" "$*"
}

svc_error() {
    printf '[%s] error: %s\n' "$SVC_NAME" "$*" >&2
}

svc_die() {
    svc_error "$*"
    exit 1
}

# Print the last lines of a log file to stderr, so a failed start shows its cause.
svc_show_log_tail() {
    local log_file="$1"
    local lines="${2:-40}"

    if [[ ! -e "$log_file" ]]; then
        printf '[%s] %s does not exist\n' "$SVC_NAME" "$log_file" >&2
    elif [[ ! -s "$log_file" ]]; then
        printf '[%s] %s is empty\n' "$SVC_NAME" "$log_file" >&2
    else
        printf '[%s] last %s lines of %s:\n' "$SVC_NAME" "$lines" "$log_file" >&2
        tail -n "$lines" "$log_file" | sed "s/^/[$SVC_NAME]   /" >&2
    fi
}

# Report a failed start with the tail of each log file and exit 1.
svc_fail_start() {
    local message="$1"
    shift

    svc_error "$message (logs: $*)"
    local log_file
    for log_file in "$@"; do
        svc_show_log_tail "$log_file"
    done
    exit 1
}

# Stop the process in PID_FILE after a failed start, so no half-started server is left
# behind, then report the failure like svc_fail_start.
svc_abort_start() {
    local pid_file="$1"
    shift

    local pid
    pid="$(svc_read_pid "$pid_file")"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        svc_terminate "$pid"
    fi
    rm -f "$pid_file"
    svc_fail_start "$@"
}

# Succeed when something accepts TCP connections on 127.0.0.1:PORT.
svc_port_open() {
    local port="$1"
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
}

# Exit with a clear message when another process already listens on PORT.
svc_require_free_port() {
    local port="$1"
    local variable="$2"

    if svc_port_open "$port"; then
        svc_die "port $port on 127.0.0.1 is already in use by another process. Stop it or set $variable to a free port"
    fi
}

# Exit unless PORT is a number from 1 to 65535.
svc_require_port_number() {
    local port="$1"
    local variable="$2"

    if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        svc_die "invalid $variable '$port': expected a TCP port number from 1 to 65535"
    fi
}

# Succeed when PID is a live process whose command line contains PATTERN, which guards
# against a stale pid file whose number now belongs to an unrelated process.
svc_pid_matches() {
    local pid="$1"
    local pattern="$2"

    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern"
}

# Print the pid stored in PID_FILE (first line), or nothing when the file is absent.
svc_read_pid() {
    local pid_file="$1"

    if [[ -f "$pid_file" ]]; then
        head -n 1 "$pid_file" | tr -d '[:space:]'
    fi
}

# Poll a command every POLL_S seconds until it succeeds or TIMEOUT_S seconds pass. Stop early
# with status 2 when the process PID (if given, else pass "") has exited.
svc_wait_until() {
    local timeout_s="$1"
    local poll_s="$2"
    local pid="$3"
    shift 3

    local deadline=$((SECONDS + timeout_s))
    while ((SECONDS < deadline)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 2
        fi
        sleep "$poll_s"
    done
    return 1
}

# Wait up to TIMEOUT_S seconds for PID to exit. Fails when it is still running then.
svc_wait_exit() {
    local pid="$1"
    local timeout_s="$2"

    local deadline=$((SECONDS + timeout_s))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.2
    done
}

# Send SIGTERM to PID, wait for it to exit, and send SIGKILL after SERVICES_STOP_TIMEOUT_S.
svc_terminate() {
    local pid="$1"

    kill -TERM "$pid" 2>/dev/null || return 0
    if ! svc_wait_exit "$pid" "$SERVICES_STOP_TIMEOUT_S"; then
        svc_error "pid $pid still running ${SERVICES_STOP_TIMEOUT_S}s after SIGTERM. Sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        svc_wait_exit "$pid" 5 || true
    fi
}

# Print "running" or "stopped" with pid and port, and return 0 or SERVICES_EXIT_STOPPED.
svc_print_status() {
    local pid="$1"
    local port="$2"

    if [[ -n "$pid" ]]; then
        svc_log "running, pid $pid, 127.0.0.1:$port, state $SVC_DIR"
        return 0
    fi
    svc_log "stopped (state $SVC_DIR)"
    return "$SERVICES_EXIT_STOPPED"
}

# Start a command in the background in its own session, detached from the terminal, with
# stdout and stderr appended to LOG_FILE, and write its pid to PID_FILE.
svc_spawn() {
    local pid_file="$1"
    local log_file="$2"
    shift 2

    setsid "$@" >>"$log_file" 2>&1 </dev/null &
    echo "$!" >"$pid_file"
}

# Copy the jars that a pom lists into LIB_DIR with Maven, once per pom content. A marker file
# contains the pom's SHA-256, so an edited pom fetches again and an unchanged one does nothing.
svc_fetch_jars() {
    local pom="$1"
    local lib_dir="$2"

    command -v java >/dev/null || svc_die "java not found on PATH. Install a JDK 17 or 21 (Debian: apt-get install -y openjdk-17-jre-headless)"
    command -v mvn >/dev/null || svc_die "mvn not found on PATH. Install Maven (Debian: apt-get install -y maven)"

    local marker="$lib_dir/.pom.sha256"
    local pom_sha
    pom_sha="$(sha256sum "$pom" | cut -d ' ' -f 1)"
    if [[ -f "$marker" && "$(cat "$marker")" == "$pom_sha" ]]; then
        return 0
    fi

    local mvn_log="$SVC_DIR/mvn.log"
    svc_log "downloading the jars listed in $pom into $lib_dir"
    rm -rf "$lib_dir"
    mkdir -p "$lib_dir"
    if ! mvn -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$lib_dir" -DincludeScope=runtime >"$mvn_log" 2>&1; then
        rm -rf "$lib_dir"
        svc_error "mvn failed to download the jars of $pom. Check access to Maven Central and run install again"
        svc_show_log_tail "$mvn_log"
        exit 1
    fi
    echo "$pom_sha" >"$marker"
    svc_log "$(find "$lib_dir" -name '*.jar' | wc -l) jars in $lib_dir"
}

# Install Debian packages with apt-get. apt-get update runs first only when the package index
# does not list the first package, and again once when an install fails on a stale index.
svc_apt_install() {
    command -v apt-get >/dev/null || svc_die "apt-get not found. Install the packages $* by hand"
    if [[ "$(id -u)" != 0 ]]; then
        svc_die "packages $* are missing. Install them as root: apt-get install -y $*"
    fi

    if ! apt-cache show "$1" >/dev/null 2>&1; then
        svc_log "apt-get update (package $1 is not in the package index)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
    fi

    # policy-rc.d exit status 101 stops the packages' maintainer scripts from starting their own
    # system service on the default port, which would collide with the servers started here.
    local policy_file=/usr/sbin/policy-rc.d
    local created_policy=0
    if [[ ! -e "$policy_file" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy_file"
        chmod +x "$policy_file"
        created_policy=1
    fi

    svc_log "apt-get install $*"
    local status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || status=$?
    if ((status != 0)); then
        svc_log "apt-get install failed. Retrying after apt-get update"
        status=0
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
            status=$?
    fi

    if ((created_policy)); then
        rm -f "$policy_file"
    fi
    if ((status != 0)); then
        svc_die "apt-get install $* failed. See the apt-get output above"
    fi
}

# Run a subcommand function named <prefix>_<subcommand>, or print usage and exit 2.
svc_dispatch() {
    local prefix="$1"
    local subcommands="$2"
    shift 2

    local subcommand="${1:-}"
    if [[ -z "$subcommand" || " $subcommands " != *" $subcommand "* ]]; then
        echo "usage: $(basename "$0") {${subcommands// /|}}" >&2
        exit 2
    fi
    "${prefix}_${subcommand}"
}

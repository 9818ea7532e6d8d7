#!/usr/bin/env bash
# Local test environment for github.com/paycore/withdraw: a MariaDB server and a
# single-node Apache Kafka broker (KRaft), both run as plain background processes
# (no Docker). Everything they write lives under .localenv/ at the repo root.
# Run `deploy/local/env.sh --help` for usage.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: deploy/local/env.sh COMMAND

Local MariaDB + Kafka for tests, no Docker. State (data, logs, pids, jars) is
kept in .localenv/ at the repo root (WITHDRAW_ENV_STATE_DIR).

Commands:
  up              install/download what is missing (MariaDB, Kafka, Chromium),
                  start MariaDB and Kafka
                  (reuses servers that are already running), wait until ready
  down [--wipe]   stop both (SIGTERM, then SIGKILL); --wipe also deletes data
  status          show what is running
  env             print export lines; use:  eval "$(deploy/local/env.sh env)"
  mariadb-start   start only MariaDB (data kept)     } for outage tests
  mariadb-stop    stop only MariaDB                  }
  mariadb-kill    SIGKILL MariaDB (a crash)          }
  kafka-start [N] start only Kafka (data kept)       } N: one node of a
  kafka-stop [N]  stop only Kafka                    } cluster (1..nodes),
  kafka-kill [N]  SIGKILL Kafka (a crash)            } default all nodes

Endpoints:
  MariaDB  127.0.0.1:3307  user withdraw / password withdraw, databases withdraw%
  Kafka    127.0.0.1:19092 (controller 127.0.0.1:19093), no topic auto-creation

A second, independent pair (e.g. for the chaos suite, which kills its servers)
runs beside the first with other ports and another state directory:
  WITHDRAW_ENV_STATE_DIR            state directory (default .localenv; a
                                    relative path is relative to the repo root)
  WITHDRAW_ENV_MYSQL_PORT           MariaDB port (default 3307)
  WITHDRAW_ENV_KAFKA_PORT           broker port of node 1 (default 19092)
  WITHDRAW_ENV_KAFKA_CONTROLLER_PORT controller port of node 1 (default 19093)
  WITHDRAW_ENV_KAFKA_NODES          KRaft nodes, each broker+controller
                                    (default 1); node i listens on the ports
                                    of node 1 + 2*(i-1); with 3 or more nodes
                                    topics default to replication factor 3
                                    and min.insync.replicas 2

If WITHDRAW_MYSQL_DSN or WITHDRAW_KAFKA_BROKERS is already set to some other
server (e.g. you run docker compose yourself), `up` leaves that one alone and
`env` prints the value you set.

Needs: root for the one-time `apt-get install mariadb-server chromium` (otherwise
install them yourself; chromium is for the console's browser test), Java 17+,
Maven, Go. Timeouts: WITHDRAW_ENV_TIMEOUT (seconds,
default 120) per server.
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${WITHDRAW_ENV_STATE_DIR:-$ROOT/.localenv}"
[[ $STATE == /* ]] || STATE="$ROOT/$STATE"
TIMEOUT="${WITHDRAW_ENV_TIMEOUT:-120}"

MYSQL_HOST=127.0.0.1
MYSQL_PORT="${WITHDRAW_ENV_MYSQL_PORT:-3307}"
MYSQL_DSN="withdraw:withdraw@tcp(${MYSQL_HOST}:${MYSQL_PORT})/withdraw_test?parseTime=true&loc=UTC&multiStatements=true"
KAFKA_PORT="${WITHDRAW_ENV_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${WITHDRAW_ENV_KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_NODES="${WITHDRAW_ENV_KAFKA_NODES:-1}"
[[ $KAFKA_NODES =~ ^[1-9]$ ]] || { echo "[env] ERROR: WITHDRAW_ENV_KAFKA_NODES must be 1..9" >&2; exit 1; }
for v in MYSQL_PORT KAFKA_PORT KAFKA_CONTROLLER_PORT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "[env] ERROR: $v must be a port number" >&2; exit 1; }
done
# Node i listens on node 1's ports + 2*(i-1): with the defaults 19092/19093,
# 19094/19095, ... so that neighbouring ports never collide.
node_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
node_controller_port() { echo $((KAFKA_CONTROLLER_PORT + 2 * ($1 - 1))); }
KAFKA_BROKERS=
KAFKA_VOTERS=
for ((n = 1; n <= KAFKA_NODES; n++)); do
	KAFKA_BROKERS+="${KAFKA_BROKERS:+,}127.0.0.1:$(node_port "$n")"
	KAFKA_VOTERS+="${KAFKA_VOTERS:+,}${n}@127.0.0.1:$(node_controller_port "$n")"
done
# A KRaft cluster id is 16 bytes, base64url without padding. This one is
# base64url("withdrawLocalEnv"): fixed, so re-formatting is deterministic.
KAFKA_CLUSTER_ID="d2l0aGRyYXdMb2NhbEVudg"

DB_DIR="$STATE/mariadb"
KAFKA_DIR="$STATE/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"

log() { printf '[env] %s\n' "$*" >&2; }
die() { printf '[env] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers --

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# pid_alive PIDFILE PATTERN: prints the pid if the file names a live process
# whose command line contains PATTERN (guards against reused pids).
pid_alive() {
	local pidfile=$1 pattern=$2 pid
	[[ -s $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern" || return 1
	echo "$pid"
}

# stop_pid NAME PIDFILE PATTERN GRACE: SIGTERM, wait up to GRACE s, then SIGKILL.
stop_pid() {
	local name=$1 pidfile=$2 pattern=$3 grace=$4 pid i
	if ! pid=$(pid_alive "$pidfile" "$pattern"); then
		log "$name: not running"
		rm -f "$pidfile"
		return 0
	fi
	log "$name: stopping (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		[[ -d /proc/$pid ]] || break
		sleep 0.1
	done
	if [[ -d /proc/$pid ]]; then
		log "$name: still alive after ${grace}s, sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		while [[ -d /proc/$pid ]]; do sleep 0.1; done
	fi
	rm -f "$pidfile"
	log "$name: stopped"
}

# fail_with_log NAME LOGFILE MESSAGE
fail_with_log() {
	log "$1: $3"
	if [[ -f $2 ]]; then
		log "last lines of $2:"
		tail -n 40 "$2" >&2 || true
	fi
	exit 1
}

# launch LOGFILE CMD...: start CMD detached from this shell. setsid puts it in
# its own session so Ctrl-C in the calling terminal / make / the test process
# group does not take it down; stdio goes to the log so callers that pipe our
# output (make | tee) do not hang; fd 9 (our lock) is closed so the server does
# not keep holding the lock. Sets LAUNCHED_PID. setsid does not fork here (the
# child of a non-interactive shell is not a group leader), so $! is the server.
launch() {
	local logfile=$1
	shift
	setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
	LAUNCHED_PID=$!
}

# Serialise up/down/start/stop (tests may call start/stop concurrently).
take_lock() {
	mkdir -p "$STATE"
	exec 9>"$STATE/.lock"
	flock 9
}

# ---------------------------------------------------------------- MariaDB --

DB_PIDFILE="$DB_DIR/mariadbd.pid"
DB_SOCKET="$DB_DIR/mariadbd.sock"
DB_CNF="$DB_DIR/my.cnf"
DB_LOG="$DB_DIR/mariadbd.log"

find_mariadbd() {
	local c
	for c in mariadbd mysqld; do
		command -v "$c" && return 0
	done
	for c in /usr/sbin/mariadbd /usr/sbin/mysqld; do
		[[ -x $c ]] && { echo "$c"; return 0; }
	done
	return 1
}

ensure_mariadb_installed() {
	find_mariadbd >/dev/null && return 0
	if [[ $(id -u) -ne 0 ]]; then
		die "MariaDB is not installed. Install it first, e.g.: sudo apt-get install -y mariadb-server"
	fi
	log "mariadb: installing mariadb-server with apt-get (one time)"
	# Keep the package's own service (port 3306) from being started: we run our
	# own instance. policy-rc.d exit 101 = "action forbidden" for invoke-rc.d.
	local policy=/usr/sbin/policy-rc.d made_policy=
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		made_policy=1
	fi
	# apt-get update only if the package is not known yet (fresh machine).
	# Output goes to .localenv/apt.log (it is long); shown if something fails.
	mkdir -p "$STATE"
	local apt_log="$STATE/apt.log" rc=0
	: >"$apt_log"
	if ! apt-cache show mariadb-server >/dev/null 2>&1; then
		apt-get update >>"$apt_log" 2>&1 || rc=$?
	fi
	if [[ $rc -eq 0 ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y mariadb-server >>"$apt_log" 2>&1 || rc=$?
	fi
	if [[ -n $made_policy ]]; then rm -f "$policy"; fi
	[[ $rc -eq 0 ]] || fail_with_log mariadb "$apt_log" "apt-get install mariadb-server failed"
	find_mariadbd >/dev/null || die "mariadb-server installed but mariadbd not found"
}

# ------------------------------------------------------------- Chromium --

# The console's browser test (internal/console) drives a headless Chromium:
# Debian's chromium, installed like mariadb-server when missing, with a CJK
# font so that Chinese field values render in its screenshots. Quick when
# both are there: two lookups, no apt.
find_chromium() {
	local c
	for c in chromium chromium-browser google-chrome; do
		command -v "$c" && return 0
	done
	return 1
}

ensure_chromium_installed() {
	if find_chromium >/dev/null && fc-list :lang=zh 2>/dev/null | grep -q .; then
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		log "chromium: not installed (the console's browser test needs it): sudo apt-get install -y chromium fonts-wqy-zenhei"
		return 0
	fi
	log "chromium: installing chromium and fonts-wqy-zenhei with apt-get (one time)"
	mkdir -p "$STATE"
	local apt_log="$STATE/apt-chromium.log" rc=0
	: >"$apt_log"
	if ! apt-cache show chromium >/dev/null 2>&1; then
		apt-get update >>"$apt_log" 2>&1 || rc=$?
	fi
	if [[ $rc -eq 0 ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-wqy-zenhei >>"$apt_log" 2>&1 || rc=$?
	fi
	[[ $rc -eq 0 ]] || fail_with_log chromium "$apt_log" "apt-get install chromium failed"
	find_chromium >/dev/null || die "chromium installed but not found on PATH"
}

# The OS account mariadbd runs as. mariadbd refuses to run as root unless told
# --user=root; that is fine for a throwaway test server and avoids chown-ing
# .localenv to the mysql user (which may not be able to reach the repo path).
db_os_user() { id -un; }

write_mariadb_cnf() {
	mkdir -p "$DB_DIR/data" "$DB_DIR/tmp"
	# --defaults-file (below) makes mariadbd and the client tools read only this
	# file, not /etc/mysql/*, so the distro's config cannot interfere.
	cat >"$DB_CNF" <<EOF
# Generated by deploy/local/env.sh; edits are overwritten.
[mariadbd]
user                           = $(db_os_user)
datadir                        = $DB_DIR/data
tmpdir                         = $DB_DIR/tmp
socket                         = $DB_SOCKET
pid-file                       = $DB_PIDFILE
log-error                      = $DB_LOG
bind-address                   = $MYSQL_HOST
port                           = $MYSQL_PORT
skip-name-resolve
skip-log-bin
character-set-server           = utf8mb4
collation-server               = utf8mb4_unicode_ci
max_connections                = 500
max_allowed_packet             = 64M
# Sized like a small production server rather than a laptop: the intake
# benchmark writes about 170 MB of redo per 100,000 commands, and with a
# 128M log InnoDB had to flush pages for checkpoints in the middle of the run.
innodb_buffer_pool_size        = 1G
innodb_log_file_size           = 1G
# Durable defaults on purpose: tests of crash/outage behaviour must see what
# production sees.
innodb_flush_log_at_trx_commit = 1
innodb_doublewrite             = 1

[client]
socket                         = $DB_SOCKET
user                           = $(db_os_user)
EOF
}

db_client() { mariadb --defaults-file="$DB_CNF" "$@"; }
db_admin() { mariadb-admin --defaults-file="$DB_CNF" "$@"; }

mariadb_running() {
	pid_alive "$DB_PIDFILE" mariadbd >/dev/null && port_open "$MYSQL_PORT"
}

mariadb_start() {
	if mariadb_running; then
		log "mariadb: already running on $MYSQL_HOST:$MYSQL_PORT (reused)"
		return 0
	fi
	ensure_mariadb_installed
	local mariadbd
	mariadbd=$(find_mariadbd)
	write_mariadb_cnf
	# A previous server may have died without cleaning up.
	if pid_alive "$DB_PIDFILE" mariadbd >/dev/null; then
		stop_pid mariadb "$DB_PIDFILE" mariadbd 30
	fi
	rm -f "$DB_PIDFILE" "$DB_SOCKET"
	port_open "$MYSQL_PORT" && die "port $MYSQL_PORT is in use by another process"

	if [[ ! -d $DB_DIR/data/mysql ]]; then
		log "mariadb: initialising data dir (one time)"
		# Creates root@localhost and <os user>@localhost with unix_socket auth,
		# which is how the [client] section above logs in as admin.
		mariadb-install-db --defaults-file="$DB_CNF" --auth-root-authentication-method=socket \
			--skip-test-db >>"$DB_DIR/install.log" 2>&1 ||
			fail_with_log mariadb "$DB_DIR/install.log" "mariadb-install-db failed"
	fi

	log "mariadb: starting on $MYSQL_HOST:$MYSQL_PORT"
	launch "$DB_DIR/stdout.log" "$mariadbd" --defaults-file="$DB_CNF"
	# mariadbd writes its own pid file only once running; write ours right away
	# so a failed start can still be stopped.
	echo "$LAUNCHED_PID" >"$DB_PIDFILE"

	local deadline=$((SECONDS + TIMEOUT))
	until db_admin --connect-timeout=1 ping >/dev/null 2>&1 && port_open "$MYSQL_PORT"; do
		[[ -d /proc/$LAUNCHED_PID ]] || fail_with_log mariadb "$DB_LOG" "mariadbd exited during startup"
		((SECONDS < deadline)) || fail_with_log mariadb "$DB_LOG" "not ready after ${TIMEOUT}s"
		sleep 0.2
	done

	# Idempotent, so it also repairs a half-initialised server. The grant is on
	# the pattern withdraw% because tests create withdraw_test_<random>
	# databases; ALL on a db pattern includes CREATE and DROP. (In a grant,
	# `_` and `%` are wildcards, and withdraw% covers withdraw_test_*.)
	db_client <<'SQL'
CREATE DATABASE IF NOT EXISTS withdraw;
CREATE DATABASE IF NOT EXISTS withdraw_test;
CREATE USER IF NOT EXISTS 'withdraw'@'127.0.0.1' IDENTIFIED BY 'withdraw';
CREATE USER IF NOT EXISTS 'withdraw'@'localhost' IDENTIFIED BY 'withdraw';
GRANT ALL PRIVILEGES ON `withdraw%`.* TO 'withdraw'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `withdraw%`.* TO 'withdraw'@'localhost';
FLUSH PRIVILEGES;
SQL
	log "mariadb: ready ($(db_client -N -e 'SELECT VERSION()'))"
}

mariadb_stop() {
	# mariadbd shuts down cleanly on SIGTERM (flushes InnoDB); give it time.
	stop_pid mariadb "$DB_PIDFILE" mariadbd 60
}

# ------------------------------------------------------------------ Kafka --

KAFKA_READY_BIN="$STATE/bin/kafkaready"
KAFKA_POM="$ROOT/deploy/local/kafka/pom.xml"

# kafka_node N: point the per-node variables at node N. A single node keeps
# its files directly in $KAFKA_DIR (the layout existing state directories
# have); the nodes of a cluster each get $KAFKA_DIR/node<N>.
kafka_node() {
	NODE=$1
	if ((KAFKA_NODES == 1)); then
		NODE_DIR=$KAFKA_DIR
	else
		NODE_DIR=$KAFKA_DIR/node$NODE
	fi
	NODE_PORT=$(node_port "$NODE")
	NODE_CONTROLLER_PORT=$(node_controller_port "$NODE")
	NODE_NAME=kafka
	((KAFKA_NODES == 1)) || NODE_NAME="kafka node $NODE"
	KAFKA_PIDFILE="$NODE_DIR/kafka.pid"
	KAFKA_LOG="$NODE_DIR/server.log"
	KAFKA_PROPS="$NODE_DIR/server.properties"
	KAFKA_LOG4J="$NODE_DIR/log4j2.properties"
	# The JVM command line for Kafka main classes (our classpath and log
	# config). -Xmx512m: plenty for tests and keeps the JVM modest on a
	# 2-core box.
	KAFKA_JAVA=(java -Xmx512m -Xms256m -XX:+UseG1GC -Djava.awt.headless=true
		-Dlog4j2.configurationFile="file:$KAFKA_LOG4J" -cp "$KAFKA_LIBS/*")
}

# kafka_nodes [N]: the nodes a command acts on: N, or all of them.
kafka_nodes() {
	if [[ -n ${1:-} ]]; then
		[[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= KAFKA_NODES)) || die "kafka node must be 1..$KAFKA_NODES, not $1"
		echo "$1"
	else
		seq 1 "$KAFKA_NODES"
	fi
}

ensure_kafka_libs() {
	# The stamp holds the POM's checksum: a changed POM (new Kafka version)
	# re-downloads, otherwise the copied jars are reused as they are.
	local sum
	sum=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
	if [[ -f $KAFKA_LIBS/.stamp && $(<"$KAFKA_LIBS/.stamp") == "$sum" ]]; then
		return 0
	fi
	command -v java >/dev/null || die "java not found (need Java 17+): apt-get install -y openjdk-17-jre-headless"
	command -v mvn >/dev/null || die "mvn not found: apt-get install -y maven"
	log "kafka: downloading broker jars with Maven (one time)"
	rm -rf "$KAFKA_LIBS"
	mkdir -p "$KAFKA_LIBS"
	mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >"$KAFKA_DIR/mvn.log" 2>&1 ||
		fail_with_log kafka "$KAFKA_DIR/mvn.log" "mvn dependency:copy-dependencies failed"
	ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 || die "kafka jars missing after mvn"
	echo "$sum" >"$KAFKA_LIBS/.stamp"
}

ensure_kafkaready() {
	# Tiny Go program that waits for a real metadata answer (see its main.go).
	# Rebuilt only when its source is newer than the binary.
	local src="$ROOT/deploy/local/kafkaready/main.go"
	if [[ -x $KAFKA_READY_BIN && ! $src -nt $KAFKA_READY_BIN ]]; then
		return 0
	fi
	log "kafka: building readiness probe"
	mkdir -p "$STATE/bin"
	(cd "$ROOT" && go build -o "$KAFKA_READY_BIN" ./deploy/local/kafkaready) >&2 ||
		die "go build ./deploy/local/kafkaready failed"
}

# write_kafka_config: server.properties and log config of the current node.
write_kafka_config() {
	mkdir -p "$NODE_DIR/data"
	# Replication of internal and default topics: 1 on a single node; on a
	# cluster of 3+, 3 replicas of which 2 must acknowledge (acks=all), so
	# that one node may die without losing an acknowledged write.
	local rf=1 isr=1
	if ((KAFKA_NODES >= 3)); then
		rf=3 isr=2
	elif ((KAFKA_NODES == 2)); then
		rf=2 isr=1
	fi
	cat >"$KAFKA_PROPS" <<EOC
# Generated by deploy/local/env.sh; edits are overwritten.
# Node $NODE of $KAFKA_NODES, each both broker and KRaft controller.
process.roles=broker,controller
node.id=${NODE}
# Static voters: no --standalone/dynamic quorum bookkeeping.
controller.quorum.voters=${KAFKA_VOTERS}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:${NODE_PORT},CONTROLLER://127.0.0.1:${NODE_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${NODE_PORT}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${NODE_DIR}/data
# Tests must create their topics explicitly, as in production.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=${rf}
min.insync.replicas=${isr}
offsets.topic.replication.factor=${rf}
transaction.state.log.replication.factor=${rf}
transaction.state.log.min.isr=${isr}
share.coordinator.state.topic.replication.factor=${rf}
share.coordinator.state.topic.min.isr=${isr}
# Fewer internal partitions than the default 50: the first consumer group /
# transaction on a fresh broker then gets its coordinator much faster.
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
# Consumers in tests join immediately instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
EOC
	cat >"$KAFKA_LOG4J" <<EOC
# Generated by deploy/local/env.sh. Broker logs go to server.log, not stdout.
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${KAFKA_LOG}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
# Very chatty at INFO and rarely useful for our tests.
logger.kafkaRequest.name = kafka.request.logger
logger.kafkaRequest.level = WARN
logger.stateChange.name = state.change.logger
logger.stateChange.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
EOC
}

# kafka_running: the current node is up.
kafka_running() {
	pid_alive "$KAFKA_PIDFILE" kafka.Kafka >/dev/null && port_open "$NODE_PORT"
}

# kafka_launch: make sure jars/config/storage exist and start the current
# node's JVM, without waiting (so `up` can start MariaDB meanwhile). Sets
# KAFKA_LAUNCHED=1 if started.
KAFKA_LAUNCHED=
kafka_launch() {
	KAFKA_LAUNCHED=
	if kafka_running; then
		log "$NODE_NAME: already running on 127.0.0.1:$NODE_PORT (reused)"
		return 0
	fi
	mkdir -p "$KAFKA_DIR"
	ensure_kafka_libs
	ensure_kafkaready
	write_kafka_config
	if pid_alive "$KAFKA_PIDFILE" kafka.Kafka >/dev/null; then
		# Alive but not listening: a stuck earlier start. Start over.
		stop_pid "$NODE_NAME" "$KAFKA_PIDFILE" kafka.Kafka 30
	fi
	port_open "$NODE_PORT" && die "port $NODE_PORT is in use by another process"
	port_open "$NODE_CONTROLLER_PORT" && die "port $NODE_CONTROLLER_PORT is in use by another process"

	if [[ ! -f $NODE_DIR/data/meta.properties ]]; then
		log "$NODE_NAME: formatting KRaft storage (one time)"
		"${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --ignore-formatted \
			-t "$KAFKA_CLUSTER_ID" -c "$KAFKA_PROPS" >"$NODE_DIR/format.log" 2>&1 ||
			fail_with_log "$NODE_NAME" "$NODE_DIR/format.log" "storage format failed"
	fi

	log "$NODE_NAME: starting on 127.0.0.1:$NODE_PORT"
	# kafka.Kafka prints nothing useful on stdout with our log4j config; the
	# file still catches JVM crashes (e.g. OutOfMemoryError, bad flags).
	launch "$NODE_DIR/stdout.log" "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_PROPS"
	echo "$LAUNCHED_PID" >"$KAFKA_PIDFILE"
	KAFKA_LAUNCHED=1
}

# kafka_wait: wait until the current node listens and answers metadata.
kafka_wait() {
	local pid launched
	local deadline=$((SECONDS + TIMEOUT))
	# Right after launch the child may not have exec'd java yet: its cmdline
	# is still this script's, so pid_alive does not recognise it. On a loaded
	# machine (the outage tests restart the broker while others run) that
	# window lasted long enough to fail a start that went on to succeed.
	launched=$(<"$KAFKA_PIDFILE")
	until pid=$(pid_alive "$KAFKA_PIDFILE" kafka.Kafka); do
		if [[ ! -d /proc/$launched ]] || ((SECONDS >= deadline)); then
			fail_with_log "$NODE_NAME" "$NODE_DIR/stdout.log" "broker process is not running"
		fi
		sleep 0.1
	done
	# Cheap TCP check first, then a real metadata round trip via the probe.
	until port_open "$NODE_PORT"; do
		[[ -d /proc/$pid ]] || fail_with_log "$NODE_NAME" "$KAFKA_LOG" "broker exited during startup (see also $NODE_DIR/stdout.log)"
		((SECONDS < deadline)) || fail_with_log "$NODE_NAME" "$KAFKA_LOG" "port $NODE_PORT not open after ${TIMEOUT}s"
		sleep 0.2
	done
	local left=$((deadline - SECONDS))
	((left > 5)) || left=5
	"$KAFKA_READY_BIN" -brokers "127.0.0.1:$NODE_PORT" -timeout "${left}s" >"$NODE_DIR/ready.log" 2>&1 || {
		cat "$NODE_DIR/ready.log" >&2
		fail_with_log "$NODE_NAME" "$KAFKA_LOG" "broker did not answer metadata requests"
	}
	log "$NODE_NAME: ready ($(cat "$NODE_DIR/ready.log"))"
}

# kafka_start [N]: start node N or every node. The nodes of a cluster are all
# launched before any is waited for: a KRaft controller quorum needs a
# majority of its voters before any broker becomes ready.
kafka_start() {
	kafka_launch_nodes "${1:-}"
	kafka_wait_nodes
}

# kafka_launch_nodes [N] / kafka_wait_nodes: kafka_start in two halves, so
# that `up` starts MariaDB while the JVMs boot.
KAFKA_LAUNCHED_NODES=()
kafka_launch_nodes() {
	local n
	KAFKA_LAUNCHED_NODES=()
	for n in $(kafka_nodes "${1:-}"); do
		kafka_node "$n"
		kafka_launch
		if [[ -n $KAFKA_LAUNCHED ]]; then KAFKA_LAUNCHED_NODES+=("$n"); fi
	done
}
kafka_wait_nodes() {
	local n
	for n in "${KAFKA_LAUNCHED_NODES[@]}"; do
		kafka_node "$n"
		kafka_wait
	done
}

kafka_stop() {
	# SIGTERM = controlled shutdown; a lone KRaft node usually needs a few
	# seconds. SIGKILL after 30 s is safe too: the log is recovered on start.
	local n
	for n in $(kafka_nodes "${1:-}"); do
		kafka_node "$n"
		stop_pid "$NODE_NAME" "$KAFKA_PIDFILE" kafka.Kafka 30
	done
}

# kill_pid NAME PIDFILE PATTERN: SIGKILL, as a crash or the OOM killer would,
# and wait until the process is gone.
kill_pid() {
	local name=$1 pidfile=$2 pattern=$3 pid
	if ! pid=$(pid_alive "$pidfile" "$pattern"); then
		log "$name: not running"
		return 0
	fi
	log "$name: SIGKILL (pid $pid)"
	kill -KILL "$pid" 2>/dev/null || true
	while [[ -d /proc/$pid ]]; do sleep 0.05; done
	rm -f "$pidfile"
}

kafka_kill() {
	local n
	for n in $(kafka_nodes "${1:-}"); do
		kafka_node "$n"
		kill_pid "$NODE_NAME" "$KAFKA_PIDFILE" kafka.Kafka
	done
}

# --------------------------------------------------------------- commands --

# external_db / external_kafka: the user points tests at servers of their own.
# A value naming our local address (e.g. left over from an earlier
# `eval "$(env.sh env)"`) does not count: we still manage that server.
external_db() {
	[[ -n ${WITHDRAW_MYSQL_DSN:-} && $WITHDRAW_MYSQL_DSN != *"$MYSQL_HOST:$MYSQL_PORT"* ]]
}
external_kafka() {
	[[ -n ${WITHDRAW_KAFKA_BROKERS:-} && $WITHDRAW_KAFKA_BROKERS != *"$KAFKA_BROKERS"* ]]
}

cmd_up() {
	take_lock
	local want_db=1 want_kafka=1
	if external_db; then
		log "mariadb: skipped, WITHDRAW_MYSQL_DSN is set"
		want_db=
	fi
	if external_kafka; then
		log "kafka: skipped, WITHDRAW_KAFKA_BROKERS is set"
		want_kafka=
	fi
	# Start the broker JVM first and let it boot while MariaDB starts.
	if [[ -n $want_kafka ]]; then kafka_launch_nodes; fi
	if [[ -n $want_db ]]; then mariadb_start; fi
	if [[ -n $want_kafka ]]; then kafka_wait_nodes; fi
	ensure_chromium_installed
	log "up. To use it:  eval \"\$(deploy/local/env.sh env)\""
}

cmd_down() {
	local wipe=
	case "${1:-}" in
	"") ;;
	--wipe) wipe=1 ;;
	*) die "down: unknown option $1 (only --wipe)" ;;
	esac
	take_lock
	kafka_stop
	mariadb_stop
	if [[ -n $wipe ]]; then
		# Data only: the downloaded jars and built probe stay cached.
		log "wiping data dirs"
		rm -rf "$DB_DIR" "$KAFKA_DIR/data" "$KAFKA_DIR"/*.log "$KAFKA_DIR"/node[0-9]*
	fi
}

cmd_status() {
	local pid
	if external_db; then
		echo "mariadb: external (WITHDRAW_MYSQL_DSN is set)"
	elif pid=$(pid_alive "$DB_PIDFILE" mariadbd) && port_open "$MYSQL_PORT"; then
		echo "mariadb: running, pid $pid, $MYSQL_HOST:$MYSQL_PORT, log $DB_LOG"
	else
		echo "mariadb: stopped"
	fi
	if external_kafka; then
		echo "kafka:   external (WITHDRAW_KAFKA_BROKERS is set)"
		return 0
	fi
	local n
	for n in $(kafka_nodes); do
		kafka_node "$n"
		if pid=$(pid_alive "$KAFKA_PIDFILE" kafka.Kafka) && port_open "$NODE_PORT"; then
			printf '%-9s running, pid %s, 127.0.0.1:%s, log %s\n' "$NODE_NAME:" "$pid" "$NODE_PORT" "$KAFKA_LOG"
		else
			printf '%-9s stopped\n' "$NODE_NAME:"
		fi
	done
}

# shell_quote: single-quote a value for eval.
shell_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

cmd_env() {
	echo "export WITHDRAW_MYSQL_DSN=$(shell_quote "${WITHDRAW_MYSQL_DSN:-$MYSQL_DSN}")"
	echo "export WITHDRAW_KAFKA_BROKERS=$(shell_quote "${WITHDRAW_KAFKA_BROKERS:-$KAFKA_BROKERS}")"
}

main() {
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case "$cmd" in
	up) cmd_up ;;
	down) cmd_down "$@" ;;
	status) cmd_status ;;
	env) cmd_env ;;
	mariadb-start) take_lock && mariadb_start ;;
	mariadb-stop) take_lock && mariadb_stop ;;
	mariadb-kill) take_lock && kill_pid mariadb "$DB_PIDFILE" mariadbd ;;
	kafka-start) take_lock && kafka_start "$@" ;;
	kafka-stop) take_lock && kafka_stop "$@" ;;
	kafka-kill) take_lock && kafka_kill "$@" ;;
	-h | --help | help) usage ;;
	"") usage >&2; exit 2 ;;
	*) printf '[env] unknown command: %s\n\n' "$cmd" >&2; usage >&2; exit 2 ;;
	esac
}

main "$@"

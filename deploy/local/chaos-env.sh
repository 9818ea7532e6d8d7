#!/usr/bin/env bash
# The chaos suite's own MariaDB + Kafka (cmd/chaos kills them, so they must
# never be the shared ones of deploy/local/env.sh): env.sh with another state
# directory and other ports. Any env.sh command works, e.g.
#
#   deploy/local/chaos-env.sh up | down [--wipe] | status | env | kafka-kill 2
#
# WITHDRAW_ENV_KAFKA_NODES=3 makes it a three-node KRaft cluster (replication
# factor 3, min.insync.replicas 2). Every WITHDRAW_ENV_* variable set by the
# caller wins over the defaults below.
set -euo pipefail
export WITHDRAW_ENV_STATE_DIR="${WITHDRAW_ENV_STATE_DIR:-.localenv-chaos}"
export WITHDRAW_ENV_MYSQL_PORT="${WITHDRAW_ENV_MYSQL_PORT:-3317}"
export WITHDRAW_ENV_KAFKA_PORT="${WITHDRAW_ENV_KAFKA_PORT:-19192}"
export WITHDRAW_ENV_KAFKA_CONTROLLER_PORT="${WITHDRAW_ENV_KAFKA_CONTROLLER_PORT:-19193}"
# The shared env's DSN/brokers (e.g. from an earlier `eval "$(env.sh env)"`)
# would make env.sh treat our servers as external and skip them.
unset WITHDRAW_MYSQL_DSN WITHDRAW_KAFKA_BROKERS
exec bash "$(dirname "${BASH_SOURCE[0]}")/env.sh" "$@"

# github.com/paycore/withdraw
#
#   make env-up      start local MariaDB + Kafka (deploy/local/env.sh, no Docker)
#   make env-down    stop them (data kept; deploy/local/env.sh down --wipe to delete)
#   make test        vet + env-up + all tests with -race against the local env,
#                    then the outage tests (they stop the shared servers) serially,
#                    then the quick chaos suite on its own servers (about a minute)
#   make bench       every benchmark against its target, median of 3 runs each
#                    (bench/results/latest.json; see docs/bench.md)
#   make bench-quick the same, one run each, small volumes (< 2 minutes)
#   make bench-intake  intake throughput vs a naive consumer (bench/results/intake.json)
#   make chaos       the chaos suite: real binaries, faults, SIGKILLs of consumers,
#                    poller, Kafka and MariaDB, invariants checked (docs/chaos.md);
#                    its own MariaDB + Kafka (deploy/local/chaos-env.sh), 3-6 min
#   make chaos-quick the same, a few hundred commands, one consumer kill (~1 min)
#   make bench-scale the same paths against 2 M rows of history vs an empty
#                    database, and the 08:00 burst (bench/results/scale.json)
#   make test-short  unit tests only (-short), no env needed
#   make vet         go vet + gofmt check

SHELL       := /bin/bash
.SHELLFLAGS := -euo pipefail -c
GO          ?= go
ENV_SH      := bash deploy/local/env.sh

# Go files to gofmt-check: everything except local env state and vendored code.
GO_FILES = $(shell find . \( -path ./.localenv -o -path ./.localenv-chaos -o -path ./.devstack -o -path ./vendor -o -path ./.git \) -prune -o -name '*.go' -print)

.PHONY: env-up env-down test test-short vet bench bench-quick bench-intake bench-scale chaos chaos-quick screenshots

env-up:
	$(ENV_SH) up

env-down:
	$(ENV_SH) down

# One recipe line so the eval'd exports reach go test. Outage tests (named
# *Outage*, gated by WITHDRAW_TESTENV_OUTAGE) stop the shared MariaDB/Kafka, so
# the first run skips them and a second, serial (-p 1) run does only them.
OUTAGE_TESTS := Outage
# Only the packages that have outage tests, so that the run's last lines are
# tests that ran (CI reads them), not "no tests to run".
OUTAGE_PKGS = $(shell grep -rl --include='*_test.go' 'func Test[A-Za-z]*Outage' . | xargs -n1 dirname | sort -u)

test: vet env-up
	eval "$$($(ENV_SH) env)" && $(GO) test -race -count=1 -timeout 20m ./... && \
	WITHDRAW_TESTENV_OUTAGE=1 $(GO) test -race -count=1 -p 1 -timeout 10m -run '$(OUTAGE_TESTS)' $(OUTAGE_PKGS)
	$(GO) run ./cmd/chaos --quick

# Produces 100,000 commands and measures the intake (and a naive consumer on
# 5,000 of them) against the local env; writes bench/results/intake.json.
bench-intake: env-up
	eval "$$($(ENV_SH) env)" && $(GO) run ./cmd/bench -out bench/results/intake.json

# The chaos suite runs its own MariaDB (3317) and Kafka (19192/19193, or
# 19192-19197 with --kafka-brokers 3) from deploy/local/chaos-env.sh: it
# kills them, so it never touches the shared env of env-up. CHAOS_FLAGS adds
# flags, e.g. CHAOS_FLAGS='--kafka-brokers 3'. Exit 1 = an invariant was
# violated, 2 = the harness failed.
chaos:
	$(GO) run ./cmd/chaos $(CHAOS_FLAGS)

chaos-quick:
	$(GO) run ./cmd/chaos --quick $(CHAOS_FLAGS)

test-short:
	$(GO) test -short ./...

vet:
	$(GO) vet ./...
	@unformatted="$$(gofmt -l $(GO_FILES))"; \
	if [[ -n "$$unformatted" ]]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; \
	fi

# Intake, naive intake, dispatch, RSA signing, relay, end-to-end throughput,
# latency at 500 commands/s and peak RSS of the consumer and sandbox
# binaries, against the local env; prints a table and writes
# bench/results/latest.json (docs/bench.md). BENCH_FLAGS adds flags, e.g.
# BENCH_FLAGS='--only e2e'.
bench: env-up
	eval "$$($(ENV_SH) env)" && $(GO) run ./cmd/bench all $(BENCH_FLAGS)

bench-quick: env-up
	eval "$$($(ENV_SH) env)" && $(GO) run ./cmd/bench all --quick $(BENCH_FLAGS)

# Retakes docs/console.md's screenshots with the console's browser test.
screenshots: env-up
	eval "$$($(ENV_SH) env)" && WITHDRAW_UPDATE_SCREENSHOTS=1 $(GO) test -count=1 -run TestConsoleInBrowser ./internal/console
# Fills a database with 2 M withdrawals of history (90 days) and measures,
# against it and an empty one: intake, dispatch and relay throughput, idle
# poller and dispatcher index reads, admin lookups and the 08:00 burst
# drained by the real poller; prints the ratios and writes
# bench/results/scale.json (docs/bench.md). SCALE_FLAGS adds flags, e.g.
# SCALE_FLAGS='--quick' or SCALE_FLAGS='--rows 500000 --burst 10000'.
bench-scale: env-up
	eval "$$($(ENV_SH) env)" && $(GO) run ./cmd/bench scale $(SCALE_FLAGS)

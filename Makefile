# github.com/paycore/withdraw
#
#   make env-up      start local MariaDB + Kafka (deploy/local/env.sh, no Docker)
#   make env-down    stop them (data kept; deploy/local/env.sh down --wipe to delete)
#   make test        vet + env-up + all tests with -race against the local env
#   make test-short  unit tests only (-short), no env needed
#   make vet         go vet + gofmt check

SHELL       := /bin/bash
.SHELLFLAGS := -euo pipefail -c
GO          ?= go
ENV_SH      := bash deploy/local/env.sh

# Go files to gofmt-check: everything except local env state and vendored code.
GO_FILES = $(shell find . \( -path ./.localenv -o -path ./.devstack -o -path ./vendor -o -path ./.git \) -prune -o -name '*.go' -print)

.PHONY: env-up env-down test test-short vet bench

env-up:
	$(ENV_SH) up

env-down:
	$(ENV_SH) down

# One recipe line so the eval'd exports reach go test.
test: vet env-up
	eval "$$($(ENV_SH) env)" && $(GO) test -race -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short ./...

vet:
	$(GO) vet ./...
	@unformatted="$$(gofmt -l $(GO_FILES))"; \
	if [[ -n "$$unformatted" ]]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; \
	fi

bench:
	@echo "not yet"

# irsa-webhook. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN     := bin/irsa-webhook
IMAGE   ?= irsa-webhook:$(VERSION)

# Tools are built from the Go module proxy into a cache outside the repo, keyed by version.
CACHE_DIR     ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/irsa-webhook
K8S_VERSION   ?= 1.37.2
ETCD_VERSION  ?= 3.6.16
CONTROL_PLANE := $(CACHE_DIR)/k8s-v$(K8S_VERSION)-etcd-v$(ETCD_VERSION)
export IRSA_CONTROL_PLANE_DIR := $(CONTROL_PLANE)
HELM_VERSION  ?= 3.22.0
HELM          := $(CACHE_DIR)/helm-v$(HELM_VERSION)/helm
export IRSA_HELM := $(HELM)
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT := $(CACHE_DIR)/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint
HELM_DOCS_VERSION ?= v1.14.2
HELM_DOCS := $(CACHE_DIR)/helm-docs-$(HELM_DOCS_VERSION)/helm-docs

# The Go toolchain: 1.27 brings encoding/json/v2 (the hot path's decoder) out of
# experiment status. The go command fetches this exact version from the module proxy on
# first use; every recipe below, and every test that runs `go`, inherits it.
GO_TOOLCHAIN ?= go1.27.3
export GOTOOLCHAIN := $(GO_TOOLCHAIN)

GO_PACKAGES  := ./...
FUZZTIME     ?= 30s
LOAD_FLAGS     ?=
DURATION       ?= 30m
E2E_EKS_FLAGS  ?=
E2E_KIND_FLAGS ?=
BENCH        ?= .
BENCHTIME    ?= 1s

help: ## List the targets.
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

build: ## Build bin/irsa-webhook (static).
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/irsa-webhook

# Built, then exec'ed rather than `go run`: on Ctrl-C `go run` exits 1 whatever its program
# does, and make reported "Error 1"; the demo itself stops cleanly and exits 0.
run: control-plane ## The main job on a local default: the walkthrough's pod admitted by the webhook on a local kube-apiserver + etcd (Ctrl-C stops it).
	go build -o bin/localrun ./test/localrun
	exec bin/localrun

mutate-example: ## Offline: print the walkthrough's Deployment as the webhook would admit it.
	go run ./cmd/irsa-webhook mutate --service-account deploy/examples/serviceaccount.yaml deploy/examples/deployment.yaml

test: lint verify shellcheck control-plane helm build ## Lint, build the release binary once (warming the build cache the tests share), then every unit and integration test (real kube-apiserver + etcd), then each fuzz target briefly.
	go test -count=1 $(GO_PACKAGES)
	FUZZTIME=5s test/tools/fuzz.sh

fuzz: ## Run every fuzz target for FUZZTIME (default 30s) each.
	FUZZTIME=$(FUZZTIME) test/tools/fuzz.sh

shellcheck: ## shellcheck every shell script under test/ and .ci/run (installs shellcheck with apt-get if missing).
	test/tools/shellcheck.sh

e2e-kind: ## End to end on a throwaway kind cluster (needs a Docker engine; E2E_KIND_FLAGS='--keep').
	test/e2e/kind/run.sh $(E2E_KIND_FLAGS)

e2e-eks: ## The walkthrough end to end on real EKS + AWS (E2E_EKS_FLAGS='--cluster C --region R --bucket B', or '--dry-run').
	test/e2e/eks/run.sh $(E2E_EKS_FLAGS)

lint: $(GOLANGCI_LINT) ## golangci-lint (.golangci.yml: go vet, staticcheck, errcheck, ... and gofmt).
	$(GOLANGCI_LINT) run $(GO_PACKAGES)

load: control-plane ## Load the webhook binary over TLS with vegeta against a real API server (LOAD_FLAGS='-duration 20s -rate 500').
	go run ./test/load $(LOAD_FLAGS)

load-memory: control-plane ## Heap per ServiceAccount: the webhook's heap at 2,001 and at 100,000 ServiceAccounts.
	go run ./test/load -memory -service-accounts 100000

soak: control-plane ## Soak: the webhook at 200 req/s of realistic reviews for DURATION (default 30m) against a real control plane; fails on any error or RSS/goroutine growth.
	go run ./test/soak -duration $(DURATION)

bench: ## Go benchmarks with allocations (BENCH=regexp, BENCHTIME=1s).
	go test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) $(GO_PACKAGES)

$(GOLANGCI_LINT):
	test/tools/build-go-tool.sh golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint $(GOLANGCI_LINT_VERSION) >/dev/null

$(HELM_DOCS):
	test/tools/build-go-tool.sh helm-docs github.com/norwoodj/helm-docs/cmd/helm-docs $(HELM_DOCS_VERSION) >/dev/null

control-plane: $(CONTROL_PLANE)/kube-apiserver ## Build etcd, kube-apiserver and kubectl from the module proxy (cached).
$(CONTROL_PLANE)/kube-apiserver:
	K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) test/tools/build-control-plane.sh $(CONTROL_PLANE) >/dev/null

helm: $(HELM) ## Build helm from the module proxy (cached).
$(HELM):
	HELM_VERSION=$(HELM_VERSION) test/tools/build-helm.sh $(dir $(HELM)) >/dev/null

generate: helm $(HELM_DOCS) ## Regenerate deploy/manifests and the chart README's table of values from the Helm chart.
	test/tools/render-manifests.sh
	$(HELM_DOCS) --chart-search-root deploy/charts --log-level warning

verify: helm $(HELM_DOCS) ## Fail if deploy/manifests or the chart README's table of values is stale; lint the chart.
	test/tools/render-manifests.sh --check
	$(HELM_DOCS) --chart-search-root deploy/charts --log-level warning --dry-run | diff -u deploy/charts/irsa-webhook/README.md - || { echo "deploy/charts/irsa-webhook/README.md is stale: run make generate"; exit 1; }
	$(HELM) lint --strict deploy/charts/irsa-webhook

image: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .

clean: ## Remove build output (the tool cache is kept).
	rm -rf bin

.PHONY: help build run mutate-example test lint bench load load-memory soak fuzz shellcheck control-plane helm generate verify image clean e2e-kind e2e-eks

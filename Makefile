# Flashstock build and test entry points. `make test` is the test command
# (README.md); .ci/run installs the system packages it needs and calls it.

GO        ?= go
MYSQL_DIR ?= $(CURDIR)/.tmp/mariadb
MYSQL_PORT ?= 13306
RACE_PKGS := ./raftstore/... ./actors/... ./http/... ./orders/... ./config/... ./sale/... ./client/... ./loadgen/... \
	./internal/backoff/... ./internal/metrics/... ./internal/ratelimit/... ./internal/breaker/... ./internal/testutil/... ./internal/wire/... ./internal/clock/... ./cmd/loadgen/... ./faults/... \
	./internal/clustertls/... ./internal/refusal/... ./internal/logbridge/...
# protoactor's cluster layer has data races of its own (shared/research/protoactor.md §6):
# multi-node tests run without -race.
CLUSTER_PKGS := ./node/... ./cluster/...

.PHONY: build run test check unit e2e fuzz faults k8s-check promtool-check locust-smoke swarm-e2e bench soak bench-scale console-shots clean

build:
	$(GO) build -o bin/node ./cmd/node
	$(GO) build -o bin/loadgen ./cmd/loadgen

# One node on the embedded default: loopback, SQLite order store in ./data.
run:
	$(GO) run ./cmd/node --data-dir ./data

# check: formatting, vet, tidy.
check:
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt needed: $$fmt"; exit 1; fi
	$(GO) vet ./...
	$(GO) run -modfile=tools/go.mod honnef.co/go/tools/cmd/staticcheck ./...
	$(GO) test -count=1 ./internal/layers/
	@cp go.mod .tmp-go.mod.bak && cp go.sum .tmp-go.sum.bak && $(GO) mod tidy && \
	  if ! diff -q go.mod .tmp-go.mod.bak >/dev/null || ! diff -q go.sum .tmp-go.sum.bak >/dev/null; then \
	    mv .tmp-go.mod.bak go.mod; mv .tmp-go.sum.bak go.sum; echo "go mod tidy changes go.mod/go.sum"; exit 1; fi; \
	  rm -f .tmp-go.mod.bak .tmp-go.sum.bak

# test: the whole suite, with a throwaway MariaDB for the MySQL tests.
test: check
	@mkdir -p .tmp
	@env_line=$$(scripts/mariadb.sh start $(MYSQL_DIR) $(MYSQL_PORT)) || exit 1; \
	  export $$env_line; status=0; \
	  $(MAKE) --no-print-directory unit e2e fuzz faults k8s-check promtool-check locust-smoke || status=$$?; \
	  scripts/mariadb.sh stop $(MYSQL_DIR); exit $$status

# unit: race-checked package tests.
unit:
	$(GO) test -race -count=1 -timeout 15m $(RACE_PKGS)

# e2e: in-process clusters and tests that run the real node binary. One
# package at a time (-p 1): each test runs a three-node cluster that keeps
# both cores of a small CI machine busy, and two of them side by side turn
# election and failover waits into CPU-starvation tests. The actor port's
# raw-gRPC tests run here, without -race (actors/remoteguard_test.go).
e2e:
	$(GO) test -p 1 -count=1 -timeout 15m $(CLUSTER_PKGS) ./cmd/node/...
	$(GO) test -count=1 -timeout 5m -run '^TestActorPort' ./actors/

# faults: the fault-injection suite (docs/reliability.md): three nodes in
# network namespaces, MariaDB, real kills, pauses, partitions, delay and
# loss. Needs root, iproute2, iptables.
faults:
	FLASHSTOCK_FAULTS=1 $(GO) test -count=1 -timeout 15m -v -run '^TestFaultSuite$$' ./faults/

# k8s-check: the Kubernetes manifests decoded strictly into k8s.io/api's
# types and checked against the node's flags (deploy/kubernetes: its own
# module, so the node binary never links k8s.io/api).
k8s-check:
	cd deploy/kubernetes && $(GO) vet ./... && $(GO) test -count=1 ./...

# promtool-check: the Swarm stack's Prometheus configuration, rules and
# Alertmanager configuration as shipped (Debian's prometheus and
# prometheus-alertmanager packages carry promtool and amtool).
promtool-check:
	promtool check config deploy/swarm/prometheus.yml
	promtool check rules deploy/swarm/flashstock-rules.yml
	amtool check-config deploy/swarm/alertmanager.yml

# swarm-e2e: the Swarm stack end to end (deploy/swarm/e2e.sh): builds the
# images (the Debian root filesystems cached in ~/.cache/flashstock-swarm),
# deploys on a single-host swarm, loadgen crowds through nginx across a
# leader kill, 10 s pauses of a leader and a gateway, three-voter checks,
# verification against both MariaDB databases; without E2E_QUICK=1 also an
# nginx update, gateway scaling, a rolling upgrade and an alert. Needs root,
# Docker and debootstrap. CI runs E2E_QUICK=1 after make test.
swarm-e2e:
	deploy/swarm/e2e.sh

# locust-smoke: the article's Locust shoppers (deploy/locust) against one
# node for 15 s, headless; fails on any failed request or broken invariant.
# Needs Debian's python3-locust.
locust-smoke:
	scripts/locust-smoke.sh

# fuzz: a short smoke of every fuzz target, about 10 s each here. Budgets
# are execution counts, not durations: with a duration, Go 1.26's fuzz
# coordinator can report its own deadline as a failure ("context deadline
# exceeded", no failing input; golang/go#75804, fixed in Go 1.27), which
# made a clean-clone CI run fail.
FUZZ := $(GO) test -run '^$$' -timeout 5m -fuzz
fuzz:
	$(FUZZ) '^FuzzDecode$$' -fuzztime 60000x ./raftstore/
	$(FUZZ) '^FuzzPurchaseBody$$' -fuzztime 40000x ./http/
	$(FUZZ) '^FuzzPurchaseBodyFast$$' -fuzztime 50000x ./http/
	$(FUZZ) '^FuzzDecodePurchaseBody$$' -fuzztime 20000x ./http/
	$(FUZZ) '^FuzzDecodeOrder$$' -fuzztime 80000x ./client/
	$(FUZZ) '^FuzzDecodeMessage$$' -fuzztime 50000x ./actors/

# bench: Flashstock against the ../shared/bench baselines back to back, the
# load generator's scenarios, failover and the Go benchmarks, then the cost
# of the cluster's keys (scripts/bench-security.sh) and a one-minute soak;
# writes docs/benchmarks.md.
bench:
	@mkdir -p docs
	scripts/bench.sh > docs/benchmarks.md.new && scripts/bench-security.sh >> docs/benchmarks.md.new && \
	  scripts/soak.sh 1 60 10 >> docs/benchmarks.md.new && mv docs/benchmarks.md.new docs/benchmarks.md

# soak: a long sale (scripts/soak.sh): one node for SOAK_SECONDS, then three
# with a follower restarted half way; writes docs/soak-results.md and the
# p99/RSS charts docs/soak-1.svg, docs/soak-3.svg.
soak:
	@mkdir -p docs
	SOAK_SVG=docs/soak-1.svg scripts/soak.sh 1 $(SOAK_SECONDS) 10 > docs/soak-results.md.new && \
	  SOAK_SVG=docs/soak-3.svg scripts/soak.sh 3 $(SOAK_SECONDS) 10 >> docs/soak-results.md.new && \
	  mv docs/soak-results.md.new docs/soak-results.md

SOAK_SECONDS ?= 300

# console-shots: the admin console's browser test (three nodes, headless
# chromium), saving its screenshots in docs/console for the README.
console-shots:
	FLASHSTOCK_CONSOLE_SHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run '^TestConsole$$' ./node/

# bench-scale: does a bigger cluster sell more? Each node in its own cgroup
# CPU quota (an emulated host); writes docs/scaling-results.md (docs/scaling.md
# reads it). Needs root.
bench-scale:
	@mkdir -p docs
	{ printf '# bench-scale results\n\n`scripts/bench-scale.sh $(SCALE_Q) $(SCALE_SECONDS) $(SCALE_ROUNDS) $(SCALE_QE)` (read in [scaling.md](scaling.md)).\n\n'; \
	  scripts/bench-scale.sh $(SCALE_Q) $(SCALE_SECONDS) $(SCALE_ROUNDS) $(SCALE_QE); } > docs/scaling-results.md.new && mv docs/scaling-results.md.new docs/scaling-results.md

SCALE_Q ?= 0.25
SCALE_SECONDS ?= 10
SCALE_ROUNDS ?= 2
# each gateway's quota in the E runs: six of them and wrk must fit the machine
SCALE_QE ?= 0.1

clean:
	rm -rf bin .tmp

# CA4: the ca4-* lifecycle targets (see ca4/MAKEFILE-CONTRACT.md), the local stack and the tests.
# Targets are thin: they call nox, terraform, kubectl or a script.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
UV_VERSION ?= 0.13.8
NOX_VERSION ?= 2026.10.20
NOX := $(VENV)/bin/nox
export UV_PYTHON_DOWNLOADS ?= never

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'

# --- bootstrap: a small venv holding only the task runner (nox) and uv -------------------

$(VENV)/.bootstrapped:
	@echo ">> bootstrapping $(VENV) with uv $(UV_VERSION) and nox $(NOX_VERSION)"
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11+"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) nox==$(NOX_VERSION)
	@touch $@

.PHONY: bootstrap
bootstrap: $(VENV)/.bootstrapped ## create the tool venv (uv + nox)

# --- tests -------------------------------------------------------------------------------

# Debian packages the tests need (installed only when missing; CI runs as root)
TEST_PACKAGES ?= prometheus shellcheck openssh-server openssh-client sudo iproute2 openssl curl
# and the rehearsal cluster's (tests/rehearsal, make rehearsal-up)
REHEARSAL_PACKAGES ?= containerd runc containernetworking-plugins conntrack iptables ipset iproute2 buildah podman debootstrap busybox-static openssh-server openssh-client openssl gcc sudo

.PHONY: test-packages
test-packages: ## install the Debian packages the tests need (the rehearsal cluster's too), if missing
	scripts/ensure_packages.sh $(TEST_PACKAGES) $(REHEARSAL_PACKAGES)

.PHONY: test
test: $(VENV)/.bootstrapped test-packages ## everything CI runs: lint, unit, integration and the Gherkin features locally
	@echo ">> make test: nox's default sessions (noxfile.py: nox.options.sessions); fixtures start Kafka, FerretDB, moto, Prometheus"
	$(NOX)

.PHONY: lint
lint: $(VENV)/.bootstrapped ## ruff + mypy
	$(NOX) -s lint

.PHONY: unit
unit: $(VENV)/.bootstrapped ## unit tests only
	$(NOX) -s unit

# --- the local stack ---------------------------------------------------------------------

.PHONY: local-up
local-up: $(VENV)/.bootstrapped ## start Kafka, FerretDB, S3 (moto), the worker and the API on 127.0.0.1
	$(NOX) -s stack -- up

.PHONY: local-demo
local-demo: $(VENV)/.bootstrapped ## local-up, then send the H200 captures through the API and show what landed
	$(NOX) -s demo

.PHONY: local-status
local-status: $(VENV)/.bootstrapped ## show each local component and its health
	$(NOX) -s stack -- status

.PHONY: local-down
local-down: $(VENV)/.bootstrapped ## stop the local stack (data kept in .ca4-local)
	$(NOX) -s stack -- down

.PHONY: local-clean
local-clean: $(VENV)/.bootstrapped ## stop the local stack and delete .ca4-local (keeps the download cache)
	$(NOX) -s stack -- clean

# --- the rehearsal cluster: a real Kubernetes on this machine (README, "Rehearsal cluster") ---


.PHONY: rehearsal-packages
rehearsal-packages: ## install the Debian packages the rehearsal cluster needs, if missing
	scripts/ensure_packages.sh $(REHEARSAL_PACKAGES)

.PHONY: rehearsal-up
rehearsal-up: $(VENV)/.bootstrapped rehearsal-packages ## build (once, cached) and start the rehearsal cluster; prints its kubeconfig
	@echo ">> rehearsal-up: Kubernetes from the Go module proxy on nodes in network namespaces (CA4_REHEARSAL_NODES, default 1)"
	$(NOX) -s rehearsal -- up

.PHONY: rehearsal
rehearsal: $(VENV)/.bootstrapped rehearsal-packages ## the whole ca4-* lifecycle on the rehearsal, twice (the second changes nothing); reports/verify-rehearsal.md
	@echo ">> rehearsal: the contract's ca4-* targets, unchanged, against the rehearsal's stand-ins for AWS (CA4_REHEARSAL_NODES, default 1)"
	$(NOX) -s rehearsal -- lifecycle

.PHONY: rehearsal-down
rehearsal-down: $(VENV)/.bootstrapped ## stop the rehearsal cluster; remove its namespaces, links, cgroups; restore sysctls
	$(NOX) -s rehearsal -- down

.PHONY: rehearsal-clean
rehearsal-clean: $(VENV)/.bootstrapped ## rehearsal-down, then delete .ca4-rehearsal (keeps the build cache): start again at any size
	$(NOX) -s rehearsal -- clean

.PHONY: rehearsal-standins
rehearsal-standins: $(VENV)/.bootstrapped rehearsal-packages ## build the stand-ins for apache/kafka and prom/prometheus (once) and load them on the rehearsal's nodes
	$(NOX) -s rehearsal -- standins

.PHONY: rehearsal-status
rehearsal-status: $(VENV)/.bootstrapped ## show each daemon and node of the rehearsal cluster
	$(NOX) -s rehearsal -- status

.PHONY: local-verify
local-verify: $(VENV)/.bootstrapped test-packages ## every Gherkin feature against a fresh local stack; reports in reports/
	$(NOX) -s local

.PHONY: producer-bundle
producer-bundle: $(VENV)/.bootstrapped ## build dist/ca4_producer.zip for the Colab notebook (prints its SHA-256)
	$(NOX) -s bundle

.PHONY: k8s
k8s: $(VENV)/.bootstrapped test-packages ## Kubernetes manifests, rendering, scripts, monitoring and the SSH lab (no cluster)
	$(NOX) -s k8s k8s_scan ssh monitoring

.PHONY: chaos
chaos: $(VENV)/.bootstrapped test-packages ## the full fault-injection set and deep fuzzing (minutes); reports/reliability.md
	$(NOX) -s chaos

.PHONY: diagrams
diagrams: $(VENV)/.bootstrapped ## render ca4/docs/*.puml to SVG (plantuml + graphviz, installed when missing)
	$(NOX) -s diagrams

.PHONY: clean
clean: ## remove build outputs and reports (not the local stack's data)
	rm -rf .nox .mypy_cache .ruff_cache .pytest_cache reports build dist

# --- CA4 lifecycle: the ca4-* targets (ca4/MAKEFILE-CONTRACT.md) -------------------------
# Thin delegations to ca4/terraform's Makefile, the scripts under scripts/ and nox's live
# session. Order: ca4-plan -> ca4-apply -> ca4-bootstrap-k3s -> ca4-platform-setup ->
# ca4-deploy-edge -> ca4-deploy-monitoring -> ca4-verify-* -> ca4-destroy.

CA4_TF_DIR ?= ca4/terraform
CA4_FEATURES ?= features
export CA4_TF_DIR

.PHONY: ca4-plan
ca4-plan: ## plan the AWS stack; saves ca4/terraform/ca4.tfplan and its JSON
	@echo ">> ca4-plan: terraform plan of the AWS stack in $(CA4_TF_DIR)"
	$(MAKE) -C $(CA4_TF_DIR) plan

.PHONY: ca4-apply
ca4-apply: ## apply exactly the plan ca4-plan saved
	@echo ">> ca4-apply: applying the saved plan in $(CA4_TF_DIR)"
	$(MAKE) -C $(CA4_TF_DIR) apply

.PHONY: ca4-bootstrap-k3s
ca4-bootstrap-k3s: ## install K3s on the edge nodes through the bastion; writes kubeconfigs/ca4-kubeconfig
	@echo ">> ca4-bootstrap-k3s: K3s server and agents over SSH through the bastion"
	scripts/bootstrap_k3s_ca4.sh

.PHONY: ca4-platform-setup
ca4-platform-setup: ## namespaces, Kafka, Secrets and ConfigMaps rendered from Terraform outputs
	@echo ">> ca4-platform-setup: namespaces, Kafka and configuration"
	scripts/platform_setup_ca4.sh

.PHONY: ca4-deploy-edge
ca4-deploy-edge: ## Processor API and Metadata Worker in namespace app
	@echo ">> ca4-deploy-edge: Processor API and Metadata Worker"
	scripts/deploy_edge_ca4.sh

.PHONY: ca4-deploy-monitoring
ca4-deploy-monitoring: ## Prometheus, Loki, log agent and Grafana in namespace monitoring
	@echo ">> ca4-deploy-monitoring: Prometheus, Loki, Grafana"
	scripts/deploy_monitoring_ca4.sh

.PHONY: ca4-verify-preflight
ca4-verify-preflight: $(VENV)/.bootstrapped ## live checks: outputs, tunnels, nodes, namespaces
	@echo ">> ca4-verify-preflight: features/preflight.feature against the live cluster"
	$(NOX) -s live -- $(CA4_FEATURES)/preflight.feature

.PHONY: ca4-verify-kafka
ca4-verify-kafka: $(VENV)/.bootstrapped ## live checks: brokers, topics, produce/consume
	@echo ">> ca4-verify-kafka: features/kafka.feature against the live cluster"
	$(NOX) -s live -- $(CA4_FEATURES)/kafka.feature

.PHONY: ca4-verify-db
ca4-verify-db: $(VENV)/.bootstrapped ## live checks: DocumentDB collections and documents
	@echo ">> ca4-verify-db: features/db.feature against the live cluster"
	$(NOX) -s live -- $(CA4_FEATURES)/db.feature

.PHONY: ca4-verify-e2e
ca4-verify-e2e: $(VENV)/.bootstrapped ## live end to end: public API -> Kafka -> worker -> DocumentDB + S3
	@echo ">> ca4-verify-e2e: features/e2e.feature against the live cluster"
	$(NOX) -s live -- $(CA4_FEATURES)/e2e.feature

.PHONY: ca4-verify-resilience
ca4-verify-resilience: $(VENV)/.bootstrapped ## live: delete a Kafka broker pod under a load of 1 000 events; nothing lost or doubled
	@echo ">> ca4-verify-resilience: features/resilience.feature against the live cluster (deletes one broker pod)"
	$(NOX) -s live -- $(CA4_FEATURES)/resilience.feature

.PHONY: ca4-destroy
ca4-destroy: ## destroy the AWS stack (Terraform asks unless FORCE=1)
	@echo ">> ca4-destroy: terraform destroy in $(CA4_TF_DIR)"
	$(MAKE) -C $(CA4_TF_DIR) destroy

.PHONY: ca4-tunnels-up
ca4-tunnels-up: ## SSH tunnels through the bastion: K3s API 16443, Kafka 19092+, Grafana 3000, Prometheus 19090
	@echo ">> ca4-tunnels-up: SSH tunnels through the bastion"
	scripts/tunnels_ca4.sh up

.PHONY: ca4-tunnels-down
ca4-tunnels-down: ## close the tunnels ca4-tunnels-up opened
	scripts/tunnels_ca4.sh down

.PHONY: ca4-tunnels-status
ca4-tunnels-status: ## show which tunnels are up
	scripts/tunnels_ca4.sh status

.PHONY: ca4-image-build
ca4-image-build: ## build the one image of the API and the worker
	@echo ">> ca4-image-build: the services' image"
	scripts/image_ca4.sh build

.PHONY: ca4-image-load
ca4-image-load: ## import the image into K3s on every edge node (docker save | ssh ... k3s ctr images import)
	@echo ">> ca4-image-load: importing the image on the edge nodes"
	scripts/image_ca4.sh load

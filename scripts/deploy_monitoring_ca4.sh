#!/usr/bin/env bash
# Deploy Prometheus, Loki, Grafana Alloy, Grafana and kafka-exporter into namespace
# monitoring (make ca4-deploy-monitoring), then wait until every Deployment is Ready.
#
# Idempotent: the Grafana admin password is generated once and reused, every ConfigMap is
# named after its content by kustomize, and apply is server-side, so a second run changes
# nothing. Needs kubectl (its built-in kustomize) and the K3s API tunnel.
set -euo pipefail

CA4_SCRIPT=deploy_monitoring_ca4.sh
# shellcheck source=scripts/lib/ca4_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/ca4_common.sh"

NAMESPACE=monitoring
MANIFESTS="$CA4_REPO_ROOT/manifests/monitoring"
PASSWORD_FILE="${CA4_GRAFANA_PASSWORD_FILE:-$CA4_SECRETS_DIR/ca4-grafana-admin-password}"
ADMIN_USER="${GRAFANA_ADMIN_USER:-admin}"
TIMEOUT="${CA4_DEPLOY_TIMEOUT:-300}"
DEPLOYMENTS=(prometheus kafka-exporter loki alloy grafana)

usage() {
  cat <<USAGE
Usage: scripts/deploy_monitoring_ca4.sh [--help]        (make ca4-deploy-monitoring)

1. Renders the Secret grafana-admin (user $ADMIN_USER) from GRAFANA_ADMIN_PASSWORD, else from
   $PASSWORD_FILE, which the first run generates (mode 600, never in git).
2. Applies manifests/monitoring (kubectl apply --server-side -k): Prometheus with its rules,
   kafka-exporter, Loki, Grafana Alloy and Grafana with the CA4 dashboards; kustomize turns
   the configuration files and dashboards into ConfigMaps named after their content.
3. Waits for each Deployment (CA4_DEPLOY_TIMEOUT seconds each, default 300), then removes
   the ConfigMaps an earlier version left behind.

Open Grafana afterwards: make ca4-tunnels-up, then http://localhost:$CA4_GRAFANA_LOCAL_PORT
(Prometheus: http://localhost:$CA4_PROMETHEUS_LOCAL_PORT).

Needs: 'make ca4-platform-setup' done (namespace monitoring), kubectl, the K3s API tunnel.
Environment: CA4_KUBECONFIG (default kubeconfigs/ca4-kubeconfig), GRAFANA_ADMIN_PASSWORD,
GRAFANA_ADMIN_USER, CA4_GRAFANA_PASSWORD_FILE, CA4_SECRETS_DIR, CA4_DEPLOY_TIMEOUT.
USAGE
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) die 2 "unexpected argument '$1' (see --help)" ;;
esac

require_cluster
kc get namespace "$NAMESPACE" -o name >/dev/null 2>&1 ||
  die 2 "namespace $NAMESPACE does not exist: run 'make ca4-platform-setup' first"

# --- the Grafana admin password: from the environment, else generated once -------------
if [ -n "${GRAFANA_ADMIN_PASSWORD:-}" ]; then
  printf '%s' "$GRAFANA_ADMIN_PASSWORD" | write_private "$PASSWORD_FILE"
elif [ ! -s "$PASSWORD_FILE" ]; then
  say "generating the Grafana admin password into $PASSWORD_FILE (mode 600)"
  # 32 random bytes, base64 without the characters that trouble shells and URLs
  head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | write_private "$PASSWORD_FILE"
fi

# From the file (never on a command line), labelled like everything else; the same
# password gives the same object, so a second run changes nothing.
say "applying Secret $NAMESPACE/grafana-admin"
kc create secret generic grafana-admin --namespace "$NAMESPACE" \
  --from-literal=admin-user="$ADMIN_USER" --from-file=admin-password="$PASSWORD_FILE" \
  --dry-run=client -o yaml |
  kc label --local -f - -o yaml \
    app.kubernetes.io/name=grafana app.kubernetes.io/component=dashboards app.kubernetes.io/part-of=ca4 |
  kc apply --server-side --field-manager=ca4 --force-conflicts -f -

# --- everything else: kustomize builds the ConfigMaps from the repo's files ---------------
say "applying manifests/monitoring (Prometheus, kafka-exporter, Loki, Alloy, Grafana, dashboards)"
kc apply --server-side --field-manager=ca4 --force-conflicts -k "$MANIFESTS"

failed=0
for d in "${DEPLOYMENTS[@]}"; do
  say "waiting up to $TIMEOUT s for deployment/$d"
  kc -n "$NAMESPACE" rollout status "deployment/$d" --timeout="${TIMEOUT}s" || failed=1
done
if [ "$failed" -ne 0 ]; then
  kc -n "$NAMESPACE" get pods -o wide || true
  kc -n "$NAMESPACE" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 20 || true
  die 1 "a rollout did not finish: kubectl -n $NAMESPACE describe pod <pod>; Pending = no local-path volume or no room on the nodes"
fi

# ConfigMaps are named after their content, so an edit leaves the previous one behind:
# remove those no Deployment mounts any more, once the new pods are Ready.
in_use="$(kc -n "$NAMESPACE" get deployments -l app.kubernetes.io/part-of=ca4 \
  -o jsonpath='{range .items[*]}{range .spec.template.spec.volumes[*]}{.configMap.name}{"\n"}{end}{end}')"
while read -r configmap; do
  [ -z "$configmap" ] && continue
  if ! grep -qxF "${configmap#configmap/}" <<<"$in_use"; then
    say "removing $configmap (an earlier version)"
    kc -n "$NAMESPACE" delete "$configmap" --ignore-not-found
  fi
done < <(kc -n "$NAMESPACE" get configmaps -l app.kubernetes.io/part-of=ca4 -o name)

say "monitoring is Ready in namespace $NAMESPACE"
info "Grafana:    make ca4-tunnels-up, then http://localhost:$CA4_GRAFANA_LOCAL_PORT"
info "            user $ADMIN_USER, password: cat $PASSWORD_FILE"
info "            dashboards in folder CA4: \"CA4 pipeline\", \"CA4 accelerator fleet\""
info "Prometheus: http://localhost:$CA4_PROMETHEUS_LOCAL_PORT (alerts: /alerts, targets: /targets)"
info "Logs:       Grafana > Explore > Loki, e.g. {namespace=\"app\"} |= \"<event id>\""

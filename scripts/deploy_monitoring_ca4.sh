#!/usr/bin/env bash
# Deploy Prometheus, Loki, Grafana Alloy, Grafana and kafka-exporter into namespace
# monitoring (make ca4-deploy-monitoring), then wait until every Deployment is Ready.
#
# Idempotent: the Grafana admin password is chosen once and reused, every ConfigMap is
# named after its content by kustomize, and apply is server-side, so a second run changes
# nothing. Needs kubectl (its built-in kustomize) and the K3s API tunnel.
set -euo pipefail

CA4_SCRIPT=deploy_monitoring_ca4.sh
# shellcheck source=scripts/lib/ca4_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/ca4_common.sh"

NAMESPACE=monitoring
# another kustomization of manifests/monitoring (the rehearsal leaves out what it cannot run)
MANIFESTS="${CA4_MONITORING_MANIFESTS:-$CA4_REPO_ROOT/manifests/monitoring}"
PASSWORD_FILE="${CA4_GRAFANA_PASSWORD_FILE:-$CA4_SECRETS_DIR/ca4-grafana-admin-password}"
ADMIN_USER="${GRAFANA_ADMIN_USER:-admin}"
TIMEOUT="${CA4_DEPLOY_TIMEOUT:-300}"
RESET_HINT="kubectl -n $NAMESPACE exec deploy/grafana -- grafana cli admin reset-admin-password '<new>'"

usage() {
  cat <<USAGE
Usage: scripts/deploy_monitoring_ca4.sh [--help]        (make ca4-deploy-monitoring)

1. Renders the Secret grafana-admin (user $ADMIN_USER) from the password recorded in
   $PASSWORD_FILE (mode 600, never in git). Grafana reads it only when it creates
   its database, so the first deploy chooses it: GRAFANA_ADMIN_PASSWORD, else a generated
   one. Later a different GRAFANA_ADMIN_PASSWORD stops the deploy (exit 2): change the
   password in Grafana first ($RESET_HINT).
2. Applies manifests/monitoring (kubectl apply --server-side -k): Prometheus with its rules,
   kafka-exporter, Loki, Grafana Alloy and Grafana with the CA4 dashboards; kustomize turns
   the configuration files and dashboards into ConfigMaps named after their content.
3. Waits for each Deployment (CA4_DEPLOY_TIMEOUT seconds each, default 300), then removes
   the ConfigMaps that neither a Deployment nor one of its kept ReplicaSets (rollout undo)
   still mounts.

Open Grafana afterwards: make ca4-tunnels-up, then http://localhost:$CA4_GRAFANA_LOCAL_PORT
(Prometheus: http://localhost:$CA4_PROMETHEUS_LOCAL_PORT).

Needs: 'make ca4-platform-setup' done (namespace monitoring), kubectl, the K3s API tunnel.
Environment: CA4_KUBECONFIG (default kubeconfigs/ca4-kubeconfig), GRAFANA_ADMIN_PASSWORD,
GRAFANA_ADMIN_USER, CA4_GRAFANA_PASSWORD_FILE, CA4_SECRETS_DIR, CA4_DEPLOY_TIMEOUT,
CA4_MONITORING_MANIFESTS (a kustomization to apply instead of manifests/monitoring).
USAGE
}

no_args_but_help "$@"

require_cluster
kc get namespace "$NAMESPACE" -o name >/dev/null 2>&1 ||
  die 2 "namespace $NAMESPACE does not exist: run 'make ca4-platform-setup' first"

# --- the Grafana admin password: chosen once, recorded in $PASSWORD_FILE ------------------
# Grafana keeps it in its database on the volume grafana-data and reads
# GF_SECURITY_ADMIN_PASSWORD only when it creates that database: once the volume exists, a
# new value in the Secret would change nothing but what this script tells the operator.
grafana_has_database() {
  [ -n "$(kc -n "$NAMESPACE" get persistentvolumeclaim grafana-data -o name --ignore-not-found)" ]
}
if [ -n "${GRAFANA_ADMIN_PASSWORD:-}" ]; then
  if [ -s "$PASSWORD_FILE" ] && [ "$(cat "$PASSWORD_FILE")" = "$GRAFANA_ADMIN_PASSWORD" ]; then
    : # the recorded one
  elif [ -s "$PASSWORD_FILE" ] && grafana_has_database; then
    die 2 "GRAFANA_ADMIN_PASSWORD is not the password Grafana was set up with ($PASSWORD_FILE), and Grafana reads a new one only when it creates its database. Change it in Grafana first: $RESET_HINT; then deploy again with GRAFANA_ADMIN_PASSWORD set to it (or unset it to keep the recorded one)."
  else
    if grafana_has_database; then
      warn "recording GRAFANA_ADMIN_PASSWORD in $PASSWORD_FILE; Grafana already has its database, so it must be the password set there ($RESET_HINT)"
    fi
    printf '%s' "$GRAFANA_ADMIN_PASSWORD" | write_private "$PASSWORD_FILE"
  fi
elif [ ! -s "$PASSWORD_FILE" ]; then
  if grafana_has_database; then
    die 2 "no Grafana password recorded in $PASSWORD_FILE, and Grafana already has its database: set a new one there ($RESET_HINT), then deploy again with GRAFANA_ADMIN_PASSWORD set to it"
  fi
  say "generating the Grafana admin password into $PASSWORD_FILE (mode 600)"
  printf '%s' "$(random_secret)" | write_private "$PASSWORD_FILE"
fi

# From the file (never on a command line), labelled like everything else; the same
# password gives the same object, so a second run changes nothing.
say "applying Secret $NAMESPACE/grafana-admin"
kc create secret generic grafana-admin --namespace "$NAMESPACE" \
  --from-literal=admin-user="$ADMIN_USER" --from-file=admin-password="$PASSWORD_FILE" \
  --dry-run=client -o yaml |
  kc label --local -f - -o yaml \
    app.kubernetes.io/name=grafana app.kubernetes.io/component=dashboards app.kubernetes.io/part-of=ca4 |
  kc_apply -f -

# --- everything else: kustomize builds the ConfigMaps from the repo's files ---------------
say "applying ${MANIFESTS#"$CA4_REPO_ROOT"/} (kubectl apply --server-side -k)"
kc_apply -k "$MANIFESTS"

if ! wait_rollouts "$NAMESPACE" "$TIMEOUT"; then
  kc -n "$NAMESPACE" get pods -o wide || true
  kc -n "$NAMESPACE" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 20 || true
  die 1 "a rollout did not finish: kubectl -n $NAMESPACE describe pod <pod>; Pending = no local-path volume or no room on the nodes"
fi

# ConfigMaps are named after their content, so an edit leaves the previous one behind:
# once the new pods are Ready, remove those that no Deployment mounts and no ReplicaSet
# kept for `kubectl rollout undo` (revisionHistoryLimit) would mount again.
in_use="$(kc -n "$NAMESPACE" get deployments,replicasets -l app.kubernetes.io/part-of=ca4 \
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

#!/usr/bin/env bash
# The Processor API and the Metadata Worker on the CA4 cluster, next to the Kafka that
# make ca4-platform-setup runs, waiting until Ready.
set -euo pipefail

CA4_SCRIPT=deploy_edge_ca4.sh
# shellcheck source=scripts/lib/ca4_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/ca4_common.sh"

TIMEOUT="${CA4_DEPLOY_TIMEOUT:-300}"

usage() {
  cat <<USAGE
Usage: scripts/deploy_edge_ca4.sh [--help]        (make ca4-deploy-edge)

1. Checks that Kafka runs with CA4_KAFKA_BROKERS brokers (make ca4-platform-setup creates
   and sizes it; this target never changes Kafka) and that its brokers are ready.
2. Renders the same Secrets as 'make ca4-platform-setup' (byte-identical for the same
   outputs) plus manifests/app with the CA4 image pinned to this checkout:
   $CA4_IMAGE_NAME:git-<commit> (scripts/image_ca4.sh tag).
3. Applies the Secrets of namespace app (${CA4_APP_SECRETS[*]}), so a
   changed Terraform output reaches the services, then manifests/app: NetworkPolicies,
   processor-api (Deployment, Service, Ingress for Traefik's websecure entrypoint,
   PodDisruptionBudget), metadata-worker; waits for every Deployment of namespace app
   (CA4_DEPLOY_TIMEOUT seconds each, default 300).

Needs: 'make ca4-platform-setup' done (Kafka, the API token file), the image built
('make ca4-image-build'; a node that lacks it gets it loaded here, as 'make ca4-image-load'
does), kubectl, python3, git. The K3s API tunnel is opened when it is not up yet.
Environment: CA4_KAFKA_BROKERS, CA4_IMAGE_ALLOW_DIRTY, CA4_RENDER_DIR, CA4_KUBECONFIG,
CA4_TF_DIR, CA4_TF_OUTPUTS.
USAGE
}

no_args_but_help "$@"

need_cmd python3 "rendering the overlays"
load_outputs
require_cluster
brokers="$(kafka_brokers)"
tag="$(image_tag)"
image="$CA4_IMAGE_NAME:$tag"

[ -s "$CA4_API_TOKENS_FILE" ] || die 2 "no API token file at $CA4_API_TOKENS_FILE: run 'make ca4-platform-setup' first"
running="$(kafka_running_brokers "$brokers")"
[ -n "$running" ] || die 2 "Kafka is not deployed (no StatefulSet platform/kafka): run 'make ca4-platform-setup' first"

say "rendering Secrets and overlays into $CA4_RENDER_DIR (image $image, $brokers Kafka broker(s))"
render_overlays "$brokers" "$tag"

# Node status lists the images each kubelet holds; a missing one ends in ErrImageNeverPull
# (scripts/lib/nodes_lacking_image.py names the nodes without it).
missing="$(kc get nodes -o json | python3 "$CA4_LIB_DIR/nodes_lacking_image.py" "$image")"
if [ -n "$missing" ]; then
  # Never a silent wait on ErrImageNeverPull: load it now (image_ca4.sh load stops at once,
  # exit 2, when the image is not built here either, naming make ca4-image-build).
  say "$image is not on node(s) $(echo "$missing" | tr '\n' ' ')- loading it (scripts/image_ca4.sh load)"
  "$CA4_REPO_ROOT/scripts/image_ca4.sh" load ||
    die 2 "$image is not on every node and could not be loaded (see above): run 'make ca4-image-build ca4-image-load'"
fi

say "checking Kafka's $brokers broker(s) (make ca4-platform-setup manages them)"
kc -n platform rollout status statefulset/kafka --timeout="${TIMEOUT}s" ||
  die 1 "Kafka is not ready: see kubectl -n platform get pods, and run 'make ca4-platform-setup'"

say "applying the Secrets of namespace app"
secret_files=()
for s in "${CA4_APP_SECRETS[@]}"; do
  secret_files+=(-f "$CA4_RENDER_DIR/platform/$s.yaml")
done
kc_apply "${secret_files[@]}"

say "applying the Processor API and the Metadata Worker ($image)"
kc_apply -k "$CA4_RENDER_DIR/app"

failed=0
wait_rollouts app "$TIMEOUT" || failed=1
kc -n app get deployments,pods,ingress -o wide || true
if [ "$failed" -ne 0 ]; then
  kc -n app get pods -o 'jsonpath={range .items[*]}{.metadata.name}{": "}{.status.containerStatuses[*].state.waiting.reason}{"\n"}{end}' || true
  die 1 "a rollout did not finish: ErrImageNeverPull = run make ca4-image-load; not ready = kubectl -n app logs deploy/<name>"
fi
say "edge deployed: the API behind $(tf_out edge_api_url), the worker consuming gpu-metadata"

#!/usr/bin/env bash
# Kafka, the Processor API and the Metadata Worker on the CA4 cluster, waiting until Ready.
set -euo pipefail

CA4_SCRIPT=deploy_edge_ca4.sh
# shellcheck source=scripts/lib/ca4_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/ca4_common.sh"

TIMEOUT="${CA4_DEPLOY_TIMEOUT:-300}"

usage() {
  cat <<USAGE
Usage: scripts/deploy_edge_ca4.sh [--help]        (make ca4-deploy-edge)

1. Renders the same overlays as 'make ca4-platform-setup' (byte-identical for the same
   outputs) plus manifests/app with the CA4 image pinned to this checkout:
   $CA4_IMAGE_NAME:git-<commit> (scripts/image_ca4.sh tag).
2. Re-applies the platform overlay (Kafka; unchanged objects stay untouched) and waits for
   the brokers.
3. Applies manifests/app: NetworkPolicies, processor-api (Deployment, Service, Ingress for
   Traefik's websecure entrypoint, PodDisruptionBudget), metadata-worker; waits for both
   rollouts (CA4_DEPLOY_TIMEOUT seconds each, default 300).

Needs: 'make ca4-platform-setup' done (the Secrets), the image on every node
('make ca4-image-build ca4-image-load'), kubectl, python3, git, the K3s API tunnel.
Environment: CA4_KAFKA_BROKERS, CA4_IMAGE_ALLOW_DIRTY, CA4_RENDER_DIR, CA4_KUBECONFIG,
CA4_TF_DIR, CA4_TF_OUTPUTS.
USAGE
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) die 2 "unexpected argument '$1' (see --help)" ;;
esac

need_cmd python3 "rendering the overlays"
load_outputs
require_cluster
brokers="$(kafka_brokers)"
tag="$(image_tag)"
image="$CA4_IMAGE_NAME:$tag"

for s in ca4-mongo-credentials ca4-s3-config ca4-edge-api-config; do
  kc -n app get secret "$s" -o name >/dev/null 2>&1 ||
    die 2 "Secret $s is missing in namespace app: run 'make ca4-platform-setup' first"
done
[ -s "$CA4_API_TOKENS_FILE" ] || die 2 "no API token file at $CA4_API_TOKENS_FILE: run 'make ca4-platform-setup' first"

say "rendering overlays into $CA4_RENDER_DIR (image $image, $brokers Kafka broker(s))"
render_overlays "$brokers" "$tag"

# Node status lists the images each kubelet holds; a missing one ends in ErrImageNeverPull.
missing="$(kc get nodes -o json | python3 -c '
import json, sys
image = sys.argv[1]
for node in json.load(sys.stdin)["items"]:
    names = {n for i in node.get("status", {}).get("images", []) for n in i.get("names", [])}
    if image not in names:
        print(node["metadata"]["name"])
' "$image")"
if [ -n "$missing" ]; then
  warn "$image is not listed on node(s) $(echo "$missing" | tr '\n' ' ')- run 'make ca4-image-build ca4-image-load' if the rollout stalls"
fi

say "applying Kafka (unchanged objects stay as they are)"
kc apply --server-side --field-manager=ca4 --force-conflicts -k "$CA4_RENDER_DIR/platform"
kc -n platform rollout status statefulset/kafka --timeout="${TIMEOUT}s" ||
  die 1 "Kafka is not ready: run 'make ca4-platform-setup' and see kubectl -n platform get pods"

say "applying the Processor API and the Metadata Worker ($image)"
kc apply --server-side --field-manager=ca4 --force-conflicts -k "$CA4_RENDER_DIR/app"

failed=0
for d in processor-api metadata-worker; do
  say "waiting up to $TIMEOUT s for deployment/$d"
  kc -n app rollout status "deployment/$d" --timeout="${TIMEOUT}s" || failed=1
done
kc -n app get deployments,pods,ingress -o wide || true
if [ "$failed" -ne 0 ]; then
  kc -n app get pods -o 'jsonpath={range .items[*]}{.metadata.name}{": "}{.status.containerStatuses[*].state.waiting.reason}{"\n"}{end}' || true
  die 1 "a rollout did not finish: ErrImageNeverPull = run make ca4-image-load; not ready = kubectl -n app logs deploy/<name>"
fi
say "edge deployed: the API behind $(tf_out edge_api_url), the worker consuming gpu-metadata"

#!/usr/bin/env bash
# Namespaces, Secrets from the Terraform outputs, and Kafka with its topics, on the CA4 cluster.
set -euo pipefail

CA4_SCRIPT=platform_setup_ca4.sh
# shellcheck source=scripts/lib/ca4_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/ca4_common.sh"

KAFKA_TIMEOUT="${CA4_KAFKA_TIMEOUT:-600}"

usage() {
  cat <<USAGE
Usage: scripts/platform_setup_ca4.sh [--help]        (make ca4-platform-setup)

1. Reads 'terraform -chdir=$CA4_TF_DIR output -json' (mongo_uri, documentdb_database, s3_*, aws_region,
   edge_api_url, edge_node_private_ips).
2. Creates $CA4_API_TOKENS_FILE (mode 600) with one random API token when it does not exist;
   producers use a line of it as CA4_API_TOKEN. Only sha256 digests reach the cluster.
   Writes the API's CA (output edge_api_ca_certificate_pem, when the stack signs its own
   certificate) to $CA4_API_CA_FILE: producers and make ca4-verify-e2e trust it through
   CA4_CA_BUNDLE. With your own certificate (api_certificate_arn) the file is removed.
3. Renders, deterministically, into $CA4_RENDER_DIR (gitignored; files mode 600):
   the Secrets ca4-mongo-credentials, ca4-s3-config, ca4-edge-api-config (namespace app) and a
   kustomize overlay of manifests/platform sized to CA4_KAFKA_BROKERS brokers.
4. Applies it (server-side apply): namespaces platform, app, monitoring; the Secrets; Kafka
   (KRaft) with its Services and NetworkPolicies; the kafka-topics Job (re-run each time:
   it creates gpu-metadata and gpu-metadata.dlq only when missing).
5. Waits for every broker to be ready and the topics Job to complete (CA4_KAFKA_TIMEOUT
   seconds each, default 600).

Needs: kubectl, python3, the kubeconfig of 'make ca4-bootstrap-k3s'; the K3s API tunnel is
opened through the bastion when it is not up yet. Environment: CA4_API_CA_FILE, CA4_KAFKA_BROKERS (1-3, default min(3, nodes); fixed
once Kafka has formatted its storage), CA4_RENDER_DIR, CA4_API_TOKENS_FILE, CA4_KUBECONFIG,
CA4_SECRETS_DIR, CA4_TF_DIR, CA4_TF_OUTPUTS.
USAGE
}

no_args_but_help "$@"

need_cmd python3 "rendering the Secrets"
load_outputs
require_cluster
brokers="$(kafka_brokers)"

if [ ! -s "$CA4_API_TOKENS_FILE" ]; then
  {
    echo "# CA4 API tokens, one per line (plain, or sha256:<hex>); only digests reach the cluster."
    random_secret
  } | write_private "$CA4_API_TOKENS_FILE"
  say "generated an API token in $CA4_API_TOKENS_FILE (mode 600): producers send it as CA4_API_TOKEN"
fi
chmod 600 "$CA4_API_TOKENS_FILE"

ca_pem="$(tf_out_optional edge_api_ca_certificate_pem)"
if [ -n "$ca_pem" ]; then
  printf '%s\n' "$ca_pem" | write_private "$CA4_API_CA_FILE"
  say "wrote the API's CA to $CA4_API_CA_FILE: producers trust it with CA4_CA_BUNDLE=$CA4_API_CA_FILE (or its text)"
elif [ -e "$CA4_API_CA_FILE" ]; then
  rm -f "$CA4_API_CA_FILE"
  say "the API uses your own certificate (no edge_api_ca_certificate_pem): removed $CA4_API_CA_FILE"
fi

say "rendering Secrets and the platform overlay into $CA4_RENDER_DIR ($brokers Kafka broker(s))"
render_overlays "$brokers"

# Stops when Kafka already runs with another size (its KRaft voter set is fixed).
kafka_running_brokers "$brokers" >/dev/null

# A finished Job cannot be re-applied with changes and would not run again: replace it, so
# every setup run re-checks the topics (creating only what is missing).
kc -n platform delete job kafka-topics --ignore-not-found --wait=true --timeout=60s >/dev/null 2>&1 || true

say "applying namespaces, Secrets and Kafka (server-side apply)"
kc_apply -k "$CA4_RENDER_DIR/platform"

say "waiting up to $KAFKA_TIMEOUT s for $brokers Kafka broker(s)"
if ! kc -n platform rollout status statefulset/kafka --timeout="${KAFKA_TIMEOUT}s"; then
  kc -n platform get pods -o wide || true
  die 1 "Kafka did not become ready (kubectl -n platform logs kafka-0)"
fi

say "waiting up to $KAFKA_TIMEOUT s for the kafka-topics Job"
if ! kc -n platform wait --for=condition=complete job/kafka-topics --timeout="${KAFKA_TIMEOUT}s"; then
  kc -n platform logs job/kafka-topics --tail=30 || true
  die 1 "the kafka-topics Job did not complete"
fi
kc -n platform logs job/kafka-topics --tail=5 || true
say "platform ready: namespaces platform/app/monitoring, Secrets in app, Kafka with $brokers broker(s) and its topics"

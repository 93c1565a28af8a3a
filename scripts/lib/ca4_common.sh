# shellcheck shell=bash
# Shared by the CA4 live scripts (bootstrap, tunnels, platform setup, deploy, image):
# messages and exit codes, Terraform outputs, SSH through the bastion, kubectl access.
#
# Exit codes: 2 = a prerequisite is missing (tool, output, kubeconfig, tunnel), as
# ca4/MAKEFILE-CONTRACT.md asks; 1 = the step itself failed.
#
# Environment (all optional):
#   CA4_TF_DIR        Terraform root module (default ca4/terraform)
#   TF                terraform binary (default: terraform, else tofu)
#   CA4_TF_OUTPUTS    a saved `terraform output -json` file to read instead of running
#                     Terraform (tests; a machine without the state)
#   CA4_SSH_KEY       private key for the bastion and the nodes (default: ssh-agent / ssh's defaults)
#   CA4_SECRETS_DIR   gitignored folder for the kubeconfig, the K3s join token and the API
#                     tokens (default kubeconfigs/)
#   CA4_STATE_DIR     gitignored folder for SSH config, known_hosts and tunnel PID files
#                     (default .cache/ca4-live/)
#   CA4_KUBECONFIG    the cluster's kubeconfig (default $CA4_SECRETS_DIR/ca4-kubeconfig)
#   CA4_S3_ENDPOINT_URL  an S3-compatible endpoint for the archive (https://...) instead of AWS's
#                     S3: the worker's S3_ENDPOINT_URL (the rehearsal's S3 stand-in)

CA4_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CA4_REPO_ROOT="$(cd "$CA4_LIB_DIR/../.." && pwd)"
# shellcheck source=scripts/lib/pins.sh
. "$CA4_LIB_DIR/pins.sh"

CA4_TF_DIR="${CA4_TF_DIR:-ca4/terraform}"
CA4_SECRETS_DIR="${CA4_SECRETS_DIR:-$CA4_REPO_ROOT/kubeconfigs}"
CA4_STATE_DIR="${CA4_STATE_DIR:-$CA4_REPO_ROOT/.cache/ca4-live}"
CA4_KUBECONFIG="${CA4_KUBECONFIG:-$CA4_SECRETS_DIR/ca4-kubeconfig}"
CA4_SSH_CONFIG="$CA4_STATE_DIR/ssh_config"

# --- messages ---------------------------------------------------------------------------

say() { printf '>> %s\n' "$*"; }
info() { printf '   %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }

# die CODE MESSAGE...: print the reason and stop (2 = missing prerequisite).
die() {
  local code=$1
  shift
  printf '%s: %s\n' "${CA4_SCRIPT:-ca4}" "$*" >&2
  exit "$code"
}

# no_args_but_help ARGS...: for the scripts that take no argument: --help prints the
# script's usage and exits 0; any argument else stops with exit 2.
no_args_but_help() {
  [ "$#" -eq 0 ] && return 0
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
  esac
  die 2 "unexpected argument '$1' (see --help)"
}

# need_cmd NAME WHY: stop with exit 2 when NAME is not on PATH.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 || die 2 "'$1' not found on PATH (needed for $2)"
}

# --- private files ------------------------------------------------------------------------

# private_dir DIR: create DIR readable by the owner only.
private_dir() {
  (umask 077 && mkdir -p "$1")
  chmod 700 "$1"
}

# write_private FILE: stdin -> FILE with mode 600, replaced atomically (never world-readable,
# not even for an instant).
write_private() {
  local file=$1 tmp
  private_dir "$(dirname "$file")"
  tmp="$(umask 077 && mktemp "$file.XXXXXX")"
  cat >"$tmp"
  chmod 600 "$tmp"
  mv -f "$tmp" "$file"
}

# random_secret: 32 random bytes as 64 hex digits (tokens, passwords: safe in shells and URLs).
random_secret() {
  python3 -c 'import secrets; print(secrets.token_hex(32))'
}

# sha256: stdin -> its SHA-256 as 64 hex digits.
sha256() {
  python3 -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
}

# --- Terraform outputs ------------------------------------------------------------------------

CA4_OUTPUTS_JSON=""

# load_outputs: read `terraform output -json` once (kept in memory only: it holds mongo_uri).
load_outputs() {
  [ -n "$CA4_OUTPUTS_JSON" ] && return 0
  need_cmd python3 "reading Terraform outputs"
  if [ -n "${CA4_TF_OUTPUTS:-}" ]; then
    [ -r "$CA4_TF_OUTPUTS" ] || die 2 "CA4_TF_OUTPUTS=$CA4_TF_OUTPUTS is not a readable file"
    CA4_OUTPUTS_JSON="$(cat "$CA4_TF_OUTPUTS")"
  else
    local tf="${TF:-}"
    if [ -z "$tf" ]; then
      if command -v terraform >/dev/null 2>&1; then tf=terraform
      elif command -v tofu >/dev/null 2>&1; then tf=tofu
      else die 2 "neither terraform nor tofu found on PATH (needed to read the outputs of $CA4_TF_DIR; or set CA4_TF_OUTPUTS to a saved 'terraform output -json' file)"
      fi
    fi
    [ -d "$CA4_REPO_ROOT/$CA4_TF_DIR" ] || [ -d "$CA4_TF_DIR" ] || die 2 "Terraform folder $CA4_TF_DIR not found (set CA4_TF_DIR)"
    local dir=$CA4_TF_DIR
    [ -d "$dir" ] || dir="$CA4_REPO_ROOT/$CA4_TF_DIR"
    CA4_OUTPUTS_JSON="$("$tf" -chdir="$dir" output -json)" ||
      die 2 "'$tf -chdir=$dir output -json' failed (has 'make ca4-apply' run? are the credentials for the state backend set?)"
  fi
  if [ -z "$(printf '%s' "$CA4_OUTPUTS_JSON" | tr -d '[:space:]{}')" ]; then
    die 2 "Terraform has no outputs yet in $CA4_TF_DIR: run 'make ca4-plan ca4-apply' first"
  fi
}

# tf_out NAME: print one output (a list: one item per line; a map: KEY=VALUE lines).
# A missing, null or empty output stops with exit 2 naming it.
tf_out() {
  _tf_out "$1" required || die 2 "cannot continue without the Terraform output '$1'"
}

# tf_out_optional NAME: like tf_out, but a null, empty or absent output prints nothing
# (for outputs that are null by design, e.g. edge_api_ca_certificate_pem with your own certificate).
tf_out_optional() {
  _tf_out "$1" optional || die 2 "cannot read the Terraform output '$1'"
}

_tf_out() {
  load_outputs
  printf '%s' "$CA4_OUTPUTS_JSON" | python3 -c '
import json, sys
name, mode, tf_dir = sys.argv[1:4]
try:
    outputs = json.load(sys.stdin)
except ValueError as exc:
    sys.exit(f"the Terraform outputs are not JSON ({exc})")
entry = outputs.get(name)
value = entry.get("value") if isinstance(entry, dict) else None
if value in (None, "", [], {}):
    if mode == "optional":
        sys.exit(0)
    print(f"Terraform output {name!r} is missing or empty (run make ca4-apply; is {tf_dir} up to date?)", file=sys.stderr)
    sys.exit(3)
if isinstance(value, list):
    print("\n".join(str(v) for v in value))
elif isinstance(value, dict):
    print("\n".join(f"{k}={v}" for k, v in sorted(value.items())))
else:
    print(value)
' "$1" "$2" "$CA4_TF_DIR"
}

# --- SSH through the bastion ------------------------------------------------------------------

CA4_BASTION=""
CA4_SSH_USER=""
CA4_NODE_IPS=()

# load_nodes: bastion address, login user and edge node IPs from the outputs.
load_nodes() {
  [ -n "$CA4_BASTION" ] && return 0
  load_outputs # once, in this shell: every tf_out below reads it from memory
  local ips
  CA4_BASTION="$(tf_out bastion_public_ip)"
  CA4_SSH_USER="$(tf_out ssh_user)"
  ips="$(tf_out edge_node_private_ips)"
  mapfile -t CA4_NODE_IPS <<<"$ips"
  [ "${#CA4_NODE_IPS[@]}" -ge 1 ] || die 2 "Terraform output 'edge_node_private_ips' lists no node"
  local server
  server="$(tf_out k3s_server_private_ip)"
  [ "$server" = "${CA4_NODE_IPS[0]}" ] ||
    die 2 "k3s_server_private_ip ($server) is not the first of edge_node_private_ips (${CA4_NODE_IPS[0]}): the outputs disagree"
}

# ssh_config_path PATH: PATH as a double-quoted ssh_config value: blanks stay inside the
# quotes, a literal % is doubled (ssh expands %-tokens in file names).
ssh_config_path() {
  printf '"%s"' "${1//%/%%}"
}

# ssh_setup: write the SSH client config every CA4 connection uses. Both hops of `ssh -J`
# read it (OpenSSH hands -F to the jump connection, but not -i or -o), so the key and the
# known_hosts file apply to the bastion as well as to the nodes.
ssh_setup() {
  need_cmd ssh "reaching the nodes through the bastion"
  load_nodes
  if [ -n "${CA4_SSH_KEY:-}" ] && [ ! -r "$CA4_SSH_KEY" ]; then
    die 2 "CA4_SSH_KEY=$CA4_SSH_KEY is not a readable private key"
  fi
  # ssh -J hands "-F <config>" to the jump connection inside a shell command, unquoted
  # (OpenSSH 9): a blank in the path would split it there.
  case "$CA4_SSH_CONFIG" in
    *[[:space:]]*) die 2 "CA4_STATE_DIR=$CA4_STATE_DIR contains a blank, which ssh -J cannot pass on: choose a path without blanks" ;;
  esac
  case "${CA4_SSH_KEY:-}$CA4_STATE_DIR" in
    *'"'*) die 2 "CA4_SSH_KEY or CA4_STATE_DIR contains a double quote, which an SSH config cannot hold" ;;
  esac
  private_dir "$CA4_STATE_DIR"
  {
    echo "# Written by scripts/lib/ca4_common.sh from the Terraform outputs; rewritten on every run."
    echo "Host ca4-bastion"
    echo "  HostName $CA4_BASTION"
    echo "Host *"
    echo "  User $CA4_SSH_USER"
    if [ -n "${CA4_SSH_KEY:-}" ]; then
      echo "  IdentityFile $(ssh_config_path "$CA4_SSH_KEY")"
      echo "  IdentitiesOnly yes"
    fi
    # A CA4-only known_hosts: trust on first use for fresh instances, without touching
    # ~/.ssh/known_hosts; a changed key on a known address still stops the connection.
    echo "  UserKnownHostsFile $(ssh_config_path "$CA4_STATE_DIR/known_hosts")"
    echo "  StrictHostKeyChecking accept-new"
    echo "  BatchMode yes"
    echo "  ConnectTimeout ${CA4_SSH_CONNECT_TIMEOUT:-10}"
    echo "  ServerAliveInterval 15"
    echo "  ServerAliveCountMax 3"
  } | write_private "$CA4_SSH_CONFIG"
}

# node_ssh IP COMMAND...: run COMMAND on an edge node, hopping through the bastion.
node_ssh() {
  local ip=$1
  shift
  ssh -F "$CA4_SSH_CONFIG" -J ca4-bastion "$CA4_SSH_USER@$ip" "$@"
}

# --- local ports, Kafka size, image tag --------------------------------------------------------

# port_open PORT: true when something accepts TCP on 127.0.0.1:PORT (1 s).
port_open() {
  python3 - "$1" <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

# kafka_brokers: CA4_KAFKA_BROKERS, else min(3, number of edge nodes). The one setting
# behind the StatefulSet's replicas, the controller quorum, replication and bootstrap list.
kafka_brokers() {
  local n="${CA4_KAFKA_BROKERS:-}"
  if [ -z "$n" ]; then
    load_nodes
    n=${#CA4_NODE_IPS[@]}
    [ "$n" -gt 3 ] && n=3
  fi
  case "$n" in
    1 | 2 | 3) printf '%s\n' "$n" ;;
    *) die 2 "CA4_KAFKA_BROKERS=$n: Kafka runs 1 to 3 brokers" ;;
  esac
}

# image_tag: the tag of the CA4 image for this checkout: git-<commit>. A working tree with
# uncommitted changes under the image's inputs gets -dirty-<hash of the diff> only with
# CA4_IMAGE_ALLOW_DIRTY=1, so a tag always names exactly one content.
# what enters the build context (.dockerignore): the rehearsal's tooling stays out of both
CA4_IMAGE_INPUTS=(Dockerfile .dockerignore pyproject.toml uv.lock README.md services ':(exclude)services/rehearsal' scripts/lib/fetch_ca_bundle.py)
image_tag() {
  need_cmd git "deriving the image tag from the commit"
  local sha dirty
  sha="$(git -C "$CA4_REPO_ROOT" rev-parse --short=12 HEAD 2>/dev/null)" ||
    die 2 "$CA4_REPO_ROOT is not a git checkout with a commit: the image tag is the commit"
  dirty="$(git -C "$CA4_REPO_ROOT" status --porcelain --untracked-files=all -- "${CA4_IMAGE_INPUTS[@]}")"
  if [ -z "$dirty" ]; then
    printf 'git-%s\n' "$sha"
  elif [ "${CA4_IMAGE_ALLOW_DIRTY:-0}" = 1 ]; then
    local h
    h="$(cd "$CA4_REPO_ROOT" && {
      git diff HEAD -- "${CA4_IMAGE_INPUTS[@]}"
      git ls-files --others --exclude-standard -z -- "${CA4_IMAGE_INPUTS[@]}" | xargs -0 -r cat
    } | sha256 | cut -c1-12)"
    printf 'git-%s-dirty-%s\n' "$sha" "$h"
  else
    die 2 "uncommitted changes under ${CA4_IMAGE_INPUTS[*]}: commit them (the image tag is the commit) or set CA4_IMAGE_ALLOW_DIRTY=1"
  fi
}

# --- the cluster --------------------------------------------------------------------------------

# require_cluster: kubectl, the kubeconfig and the K3s API tunnel, or exit 2 naming what is
# missing. The tunnel is opened here when nothing answers on its port (the bootstrap closes
# its own), so the contract's targets run in order without a separate ca4-tunnels-up.
require_cluster() {
  need_cmd kubectl "talking to the K3s API"
  [ -r "$CA4_KUBECONFIG" ] || die 2 "no kubeconfig at $CA4_KUBECONFIG: run 'make ca4-bootstrap-k3s' first"
  port_open "$CA4_K3S_API_LOCAL_PORT" && return 0
  say "no K3s API tunnel on 127.0.0.1:$CA4_K3S_API_LOCAL_PORT yet: opening it through the bastion"
  "$CA4_REPO_ROOT/scripts/tunnels_ca4.sh" up k3s-api ||
    die 2 "could not open the K3s API tunnel on 127.0.0.1:$CA4_K3S_API_LOCAL_PORT (see above): check the bastion and CA4_SSH_KEY, then 'make ca4-tunnels-up'"
}

# kc ARGS...: kubectl against the CA4 cluster only (never the user's current context).
kc() {
  kubectl --kubeconfig "$CA4_KUBECONFIG" "$@"
}

# kc_apply ARGS...: server-side apply as field manager ca4, the one owner of what CA4 applies.
kc_apply() {
  kc apply --server-side --field-manager=ca4 --force-conflicts "$@"
}

# wait_rollouts NAMESPACE TIMEOUT: wait for every CA4 Deployment there, TIMEOUT seconds each.
# The list comes from the cluster, so a Deployment added to the manifests is waited for too.
# Returns 1 when one did not finish (after waiting for the others).
wait_rollouts() {
  local ns=$1 timeout=$2 d failed=0
  local deployments=()
  mapfile -t deployments < <(kc -n "$ns" get deployments -l app.kubernetes.io/part-of=ca4 -o name)
  if [ "${#deployments[@]}" -eq 0 ]; then
    warn "no CA4 Deployment found in namespace $ns"
    return 1
  fi
  for d in "${deployments[@]}"; do
    say "waiting up to $timeout s for $d"
    kc -n "$ns" rollout status "$d" --timeout="${timeout}s" || failed=1
  done
  return "$failed"
}

# kafka_running_brokers BROKERS: print the size of the running StatefulSet platform/kafka
# (nothing when there is none yet); stop with exit 1 when it is not BROKERS. The voter set of
# a KRaft cluster is written into each broker's storage when it is first formatted: a
# different size needs a fresh cluster, not a rolling change.
kafka_running_brokers() {
  local brokers=$1 current
  current="$(kc -n platform get statefulset kafka -o 'jsonpath={.spec.replicas}' --ignore-not-found)" ||
    die 1 "cannot read the StatefulSet platform/kafka (see above)"
  if [ -n "$current" ] && [ "$current" != "$brokers" ]; then
    die 1 "Kafka runs $current broker(s) but $brokers are asked for (CA4_KAFKA_BROKERS): the KRaft voter set is fixed at format time. Keep CA4_KAFKA_BROKERS=$current, or delete the StatefulSet kafka and its PVCs (data loss) first."
  fi
  printf '%s\n' "$current"
}

# --- rendering ----------------------------------------------------------------------------------

CA4_RENDER_DIR="${CA4_RENDER_DIR:-$CA4_REPO_ROOT/rendered}"
CA4_API_TOKENS_FILE="${CA4_API_TOKENS_FILE:-$CA4_SECRETS_DIR/ca4-api-tokens}"
# the CA of the API's certificate when the stack signs its own (producers: CA4_CA_BUNDLE)
CA4_API_CA_FILE="${CA4_API_CA_FILE:-$CA4_SECRETS_DIR/ca4-api-ca.pem}"
# The Secrets of namespace app the renderer writes, as $CA4_RENDER_DIR/platform/<name>.yaml.
# shellcheck disable=SC2034 # read by deploy_edge_ca4.sh
CA4_APP_SECRETS=(ca4-mongo-credentials ca4-s3-config ca4-edge-api-config)

# render_overlays BROKERS [IMAGE_TAG]: the Secrets and kustomize overlays under
# $CA4_RENDER_DIR (gitignored, mode 600), from the outputs in memory; same inputs, same bytes.
render_overlays() {
  local brokers=$1 tag=${2:-}
  local args=(--outputs - --api-tokens-file "$CA4_API_TOKENS_FILE" --kafka-brokers "$brokers" --out "$CA4_RENDER_DIR")
  [ -n "$tag" ] && args+=(--image-tag "$tag")
  [ -n "${CA4_S3_ENDPOINT_URL:-}" ] && args+=(--s3-endpoint-url "$CA4_S3_ENDPOINT_URL")
  load_outputs
  printf '%s' "$CA4_OUTPUTS_JSON" | python3 "$CA4_REPO_ROOT/scripts/render_platform_config.py" "${args[@]}" ||
    die 2 "rendering the Secrets and overlays failed (see above)"
}

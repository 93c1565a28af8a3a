#!/usr/bin/env bash
# Turn the bare edge nodes from `make ca4-apply` into a K3s cluster, over SSH through the bastion.
set -euo pipefail

CA4_SCRIPT=bootstrap_k3s_ca4.sh
# shellcheck source=scripts/lib/ca4_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/ca4_common.sh"

K3S_VERSION="${CA4_K3S_VERSION:-$CA4_K3S_VERSION_PINNED}"
# The installer of the pinned release itself (not get.k3s.io's moving head); a local file
# or any URL may replace it (tests use a stand-in that records its arguments).
K3S_INSTALL_SCRIPT="${CA4_K3S_INSTALL_SCRIPT:-https://raw.githubusercontent.com/k3s-io/k3s/${K3S_VERSION/+/%2B}/install.sh}"
TOKEN_FILE="$CA4_SECRETS_DIR/ca4-k3s-token"
READY_TIMEOUT="${CA4_K3S_READY_TIMEOUT:-300}"

usage() {
  cat <<EOF
Usage: scripts/bootstrap_k3s_ca4.sh [--help]        (make ca4-bootstrap-k3s)

Installs K3s $K3S_VERSION on the edge nodes of the Terraform outputs, reaching each one
with 'ssh -J' through the bastion: the server on the first node (node IP and advertise
address = its private IP, TLS SANs for that IP, 127.0.0.1 and localhost, secrets
encryption), agents on the others, joined with one token that is generated once and kept
in $TOKEN_FILE (mode 600). A node already running $K3S_VERSION in its role with that token
is left alone, so a second run changes nothing.

Then it writes $CA4_KUBECONFIG (mode 600) from the server's k3s.yaml, with
the cluster's server set to https://127.0.0.1:$CA4_K3S_API_LOCAL_PORT (the SSH tunnel) by
'kubectl config set-cluster', and waits until every node is Ready with $K3S_VERSION,
through the tunnel (opened for the check, and closed again, when it is not already up).

Needs: ssh, kubectl, python3; the Terraform outputs bastion_public_ip, ssh_user,
edge_node_private_ips, k3s_server_private_ip; the key of ssh_key_name (CA4_SSH_KEY or
ssh-agent); passwordless sudo on the nodes (the AMI's default user has it).

Environment: CA4_K3S_VERSION (default $CA4_K3S_VERSION_PINNED), CA4_K3S_INSTALL_SCRIPT
(file or URL of the installer; default the release's install.sh), CA4_K3S_READY_TIMEOUT
(seconds, default 300), CA4_SSH_KEY, CA4_SECRETS_DIR, CA4_STATE_DIR, CA4_KUBECONFIG,
CA4_TF_DIR, CA4_TF_OUTPUTS.
EOF
}

no_args_but_help "$@"

need_cmd python3 "reading outputs and hashing the token"
need_cmd kubectl "editing the kubeconfig and checking the nodes"
WORK="$(umask 077 && mktemp -d)"
OPENED_TUNNEL=0
cleanup() {
  rm -rf "$WORK"
  if [ "$OPENED_TUNNEL" = 1 ]; then
    "$CA4_LIB_DIR/../tunnels_ca4.sh" down k3s-api >/dev/null || true
  fi
}
trap cleanup EXIT

# The probe runs on a node (as root) and prints one line:
#   ca4-probe <k3s version|none> <active unit: k3s|k3s-agent|none> <sha256 of its K3S_TOKEN|none>
# The token is compared by digest, so it never travels back over the wire.
read -r -d '' PROBE <<'SH' || true
v=none; u=none; t=none
if command -v k3s >/dev/null 2>&1; then v=$(k3s --version 2>/dev/null | awk 'NR==1{print $3}'); fi
for unit in k3s k3s-agent; do
  if systemctl is-active --quiet "$unit" 2>/dev/null; then u=$unit; fi
done
env_file=/etc/systemd/system/$u.service.env
if [ "$u" != none ] && [ -r "$env_file" ]; then
  tok=$(sed -n "s/^K3S_TOKEN=['\"]\{0,1\}\([^'\"]*\)['\"]\{0,1\}\$/\1/p" "$env_file" | head -n 1)
  if [ -n "$tok" ]; then t=$(printf '%s' "$tok" | sha256sum | cut -c1-64); fi
fi
echo "ca4-probe ${v:-none} $u $t"
SH

# probe IP -> "version unit token-digest"
probe() {
  local out
  out="$(node_ssh "$1" sudo -n sh -s <<<"$PROBE")" || die 1 "node $1: the probe over SSH failed (is the bastion reachable, the key right, sudo passwordless?)"
  out="$(printf '%s\n' "$out" | sed -n 's/^ca4-probe //p' | tail -n 1)"
  [ -n "$out" ] || die 1 "node $1: the probe printed nothing"
  printf '%s\n' "$out"
}

# The installer, fetched once per run (a URL) or read from a file.
installer() {
  local dest="$WORK/install.sh"
  if [ ! -s "$dest" ]; then
    case "$K3S_INSTALL_SCRIPT" in
      http://* | https://*)
        need_cmd curl "downloading the K3s installer"
        curl -fsSL --retry 3 --max-time 60 -o "$dest" "$K3S_INSTALL_SCRIPT" ||
          die 1 "cannot download the K3s installer from $K3S_INSTALL_SCRIPT"
        ;;
      *)
        [ -r "$K3S_INSTALL_SCRIPT" ] || die 2 "CA4_K3S_INSTALL_SCRIPT=$K3S_INSTALL_SCRIPT is not a readable file"
        cp "$K3S_INSTALL_SCRIPT" "$dest"
        ;;
    esac
  fi
  printf '%s\n' "$dest"
}

# sq VALUE: VALUE as one single-quoted word for the node's sh.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# install IP ROLE ARGS...: stream the installer over SSH with its settings in front, so the
# token is neither on a command line (ps) nor in a file on the node beyond K3s's own.
install_k3s() {
  local ip=$1 role=$2
  shift 2
  local script
  script="$(installer)"
  {
    echo "export INSTALL_K3S_VERSION=$(sq "$K3S_VERSION")"
    echo "export K3S_TOKEN=$(sq "$TOKEN")"
    if [ "$role" = agent ]; then
      echo "export K3S_URL=$(sq "https://${CA4_NODE_IPS[0]}:6443")"
    fi
    cat "$script"
  } | node_ssh "$ip" sudo -n sh -s -- "$role" "$@" ||
    die 1 "node $ip: the K3s installer failed (see its output above)"
}

# --- nodes and token --------------------------------------------------------------------------

load_outputs
ssh_setup
SERVER="${CA4_NODE_IPS[0]}"
say "K3s $K3S_VERSION on ${#CA4_NODE_IPS[@]} node(s) through the bastion $CA4_BASTION (server $SERVER)"

server_state="$(probe "$SERVER")"
read -r server_version server_unit server_digest <<<"$server_state"

if [ -r "$TOKEN_FILE" ]; then
  TOKEN="$(tr -d '[:space:]' <"$TOKEN_FILE")"
  info "join token: $TOKEN_FILE (kept from an earlier run)"
elif [ "$server_unit" = k3s ]; then
  # The server already runs (this machine lost its copy): take its token back, so agents
  # join the cluster that exists instead of a new token that it would refuse.
  TOKEN="$(node_ssh "$SERVER" "sudo -n cat /var/lib/rancher/k3s/server/token" | tr -d '[:space:]')" ||
    die 1 "node $SERVER: K3s runs, but reading its token over SSH failed (see above)"
  TOKEN="${TOKEN##*::server:}"
  [ -n "$TOKEN" ] || die 1 "node $SERVER: K3s runs but its token could not be read"
  printf '%s\n' "$TOKEN" | write_private "$TOKEN_FILE"
  info "join token: recovered from the running server into $TOKEN_FILE"
else
  TOKEN="$(random_secret)"
  printf '%s\n' "$TOKEN" | write_private "$TOKEN_FILE"
  info "join token: generated into $TOKEN_FILE (mode 600)"
fi
chmod 600 "$TOKEN_FILE"
TOKEN_DIGEST="$(printf '%s' "$TOKEN" | sha256)"

# --- server -------------------------------------------------------------------------------------

if [ "$server_version $server_unit $server_digest" = "$K3S_VERSION k3s $TOKEN_DIGEST" ]; then
  info "node $SERVER (server): K3s $K3S_VERSION already running; left alone"
else
  if [ "$server_unit" = k3s ] && [ "$server_digest" != "$TOKEN_DIGEST" ]; then
    die 1 "node $SERVER: K3s runs with another token than $TOKEN_FILE; restore that file (or uninstall K3s on the server) first"
  fi
  say "node $SERVER: installing the K3s server $K3S_VERSION (found: $server_version, $server_unit)"
  install_k3s "$SERVER" server \
    --node-ip="$SERVER" \
    --advertise-address="$SERVER" \
    --tls-san="$SERVER" \
    --tls-san=127.0.0.1 \
    --tls-san=localhost \
    --write-kubeconfig-mode=600 \
    --secrets-encryption \
    --node-label=ca4/role=server
fi

# --- agents -------------------------------------------------------------------------------------

for ip in "${CA4_NODE_IPS[@]:1}"; do
  state="$(probe "$ip")"
  read -r version unit digest <<<"$state"
  if [ "$version $unit $digest" = "$K3S_VERSION k3s-agent $TOKEN_DIGEST" ]; then
    info "node $ip (agent): K3s $K3S_VERSION already running; left alone"
    continue
  fi
  say "node $ip: installing the K3s agent $K3S_VERSION (found: $version, $unit)"
  install_k3s "$ip" agent \
    --node-ip="$ip" \
    --node-label=ca4/role=agent
done

# --- kubeconfig -------------------------------------------------------------------------------------

say "writing $CA4_KUBECONFIG (server https://127.0.0.1:$CA4_K3S_API_LOCAL_PORT)"
waited=0
until node_ssh "$SERVER" "sudo -n test -s /etc/rancher/k3s/k3s.yaml"; do
  waited=$((waited + 2))
  [ "$waited" -le 120 ] || die 1 "node $SERVER: /etc/rancher/k3s/k3s.yaml did not appear within 120 s"
  sleep 2
done
kcfg="$WORK/kubeconfig"
(umask 077 && node_ssh "$SERVER" "sudo -n cat /etc/rancher/k3s/k3s.yaml" >"$kcfg")
# Edit the cluster entry the current context uses (K3s names it "default"), instead of
# replacing text that might also occur elsewhere in the file.
ctx="$(kubectl --kubeconfig "$kcfg" config current-context)"
cluster="$(kubectl --kubeconfig "$kcfg" config view -o "jsonpath={.contexts[?(@.name==\"$ctx\")].context.cluster}")"
[ -n "$cluster" ] || die 1 "the server's k3s.yaml has no cluster for its context '$ctx'"
kubectl --kubeconfig "$kcfg" config set-cluster "$cluster" --server="https://127.0.0.1:$CA4_K3S_API_LOCAL_PORT" >/dev/null
if [ "$ctx" != ca4 ]; then
  kubectl --kubeconfig "$kcfg" config rename-context "$ctx" ca4 >/dev/null
fi
write_private "$CA4_KUBECONFIG" <"$kcfg"

# --- nodes, through the tunnel ----------------------------------------------------------------------

if ! port_open "$CA4_K3S_API_LOCAL_PORT"; then
  "$CA4_LIB_DIR/../tunnels_ca4.sh" up k3s-api
  OPENED_TUNNEL=1
fi
say "waiting up to $READY_TIMEOUT s for ${#CA4_NODE_IPS[@]} node(s) Ready with $K3S_VERSION (through 127.0.0.1:$CA4_K3S_API_LOCAL_PORT)"
deadline=$(($(date +%s) + READY_TIMEOUT))
# scripts/lib/nodes_ready.py prints a line per node, then ALL-READY or WAITING.
while :; do
  report="$(kubectl --kubeconfig "$CA4_KUBECONFIG" --request-timeout=10s get --raw /api/v1/nodes 2>"$WORK/kubectl.err" |
    python3 "$CA4_LIB_DIR/nodes_ready.py" "$K3S_VERSION" "${CA4_NODE_IPS[@]}" || true)"
  if [ "$(printf '%s\n' "$report" | tail -n 1)" = ALL-READY ]; then
    printf '%s\n' "$report" | sed '$d'
    break
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    printf '%s\n' "$report" | sed '$d'
    die 1 "not every node was Ready with $K3S_VERSION within $READY_TIMEOUT s $(tail -n 1 "$WORK/kubectl.err" 2>/dev/null)"
  fi
  sleep 5
done
say "K3s is up: KUBECONFIG=$CA4_KUBECONFIG kubectl get nodes (with 'make ca4-tunnels-up')"

#!/usr/bin/env bash
# SSH tunnels from this machine into the CA4 cluster, through the bastion.
set -euo pipefail

CA4_SCRIPT=tunnels_ca4.sh
# shellcheck source=scripts/lib/ca4_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/ca4_common.sh"

usage() {
  cat <<EOF
Usage: scripts/tunnels_ca4.sh up|down|status [TUNNEL...]   (make ca4-tunnels-up|down|status)

Background SSH tunnels, each one ssh process with a PID file under \$CA4_STATE_DIR/tunnels
($CA4_STATE_DIR/tunnels). Local ends listen on localhost only.

  k3s-api     localhost:$CA4_K3S_API_LOCAL_PORT  -> bastion -> K3s server :6443 (the kubeconfig's server)
  kafka-N     localhost:$((CA4_KAFKA_TUNNEL_PORT_BASE))+N -> bastion -> edge node 0 -> NodePort $CA4_KAFKA_NODE_PORT_BASE+N
              (broker N's tunnel listener, advertised as localhost:$((CA4_KAFKA_TUNNEL_PORT_BASE))+N; one per broker)
  grafana     localhost:$CA4_GRAFANA_LOCAL_PORT   -> edge node 0 -> NodePort $CA4_GRAFANA_NODE_PORT (namespace monitoring)
  prometheus  localhost:$CA4_PROMETHEUS_LOCAL_PORT  -> edge node 0 -> NodePort $CA4_PROMETHEUS_NODE_PORT (not 9090: the local stack's)

up      opens the named tunnels (default: all; kafka-N for every broker); one already up is
        left alone; a local port taken by another program stops it with an error.
down    closes the named tunnels (default: every open one); only processes this script
        started (checked by PID file and command line); closing a closed one does nothing.
status  shows each tunnel and whether its local port answers; exit 1 only when named
        tunnels are down.

The API needs no tunnel: it is public at the Terraform output edge_api_url.

Inputs: Terraform outputs bastion_public_ip, ssh_user, edge_node_private_ips,
k3s_server_private_ip (up only). Environment: CA4_SSH_KEY, CA4_KAFKA_BROKERS (default
min(3, nodes)), CA4_TUNNEL_WAIT (seconds to wait for a tunnel, default 20), CA4_STATE_DIR,
CA4_TF_DIR, CA4_TF_OUTPUTS.
EOF
}

TUNNEL_DIR="$CA4_STATE_DIR/tunnels"

# local_port NAME
local_port() {
  case "$1" in
    k3s-api) echo "$CA4_K3S_API_LOCAL_PORT" ;;
    kafka-[0-2]) echo $((CA4_KAFKA_TUNNEL_PORT_BASE + ${1#kafka-})) ;;
    grafana) echo "$CA4_GRAFANA_LOCAL_PORT" ;;
    prometheus) echo "$CA4_PROMETHEUS_LOCAL_PORT" ;;
    *) die 2 "unknown tunnel '$1' (k3s-api, kafka-0..kafka-2, grafana, prometheus)" ;;
  esac
}

# pid_of NAME: the PID of this script's ssh for NAME, if it still runs; empty otherwise.
pid_of() {
  local file="$TUNNEL_DIR/$1.pid" pid port args
  [ -r "$file" ] || return 0
  read -r pid port <"$file" || return 0
  [ -n "${pid:-}" ] || return 0
  args="$(ps -ww -p "$pid" -o args= 2>/dev/null || true)"
  # The PID may have been reused by another program: only an ssh forwarding our port counts.
  case "$args" in
    ssh*"-L localhost:$port:"*) echo "$pid" ;;
  esac
}

start_tunnel() {
  local name=$1 host=$2 port=$3 pid log lport waited=0 limit
  lport="$(local_port "$name")"
  pid="$(pid_of "$name")"
  if [ -n "$pid" ]; then
    info "$name: already up (pid $pid) on localhost:$lport"
    return 0
  fi
  if port_open "$lport"; then
    die 1 "$name: localhost:$lport is taken by a program this script did not start; stop it or free the port"
  fi
  local route=(ca4-bastion)
  if [ "$name" != k3s-api ]; then
    # NodePorts are open to the nodes only, so these ride on SSH to edge node 0 itself.
    route=(-J ca4-bastion "$CA4_SSH_USER@${CA4_NODE_IPS[0]}")
  fi
  log="$TUNNEL_DIR/$name.log"
  nohup ssh -F "$CA4_SSH_CONFIG" -N -o ExitOnForwardFailure=yes \
    -L "localhost:$lport:$host:$port" "${route[@]}" >"$log" 2>&1 </dev/null &
  pid=$!
  printf '%s %s\n' "$pid" "$lport" >"$TUNNEL_DIR/$name.pid"
  limit=$((${CA4_TUNNEL_WAIT:-20} * 2))
  until port_open "$lport"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$TUNNEL_DIR/$name.pid"
      die 1 "$name: ssh exited before localhost:$lport opened; its log ($log):
$(tail -n 5 "$log" 2>/dev/null)"
    fi
    waited=$((waited + 1))
    if [ "$waited" -ge "$limit" ]; then
      kill "$pid" 2>/dev/null || true
      rm -f "$TUNNEL_DIR/$name.pid"
      die 1 "$name: localhost:$lport did not open within ${CA4_TUNNEL_WAIT:-20} s; log: $log"
    fi
    sleep 0.5
  done
  info "$name: up (pid $pid) localhost:$lport -> $host:$port"
}

stop_tunnel() {
  local name=$1 pid n=0
  pid="$(pid_of "$name")"
  if [ -z "$pid" ]; then
    if [ -e "$TUNNEL_DIR/$name.pid" ]; then
      info "$name: not running (removed a stale PID file)"
      rm -f "$TUNNEL_DIR/$name.pid"
    fi
    return 0
  fi
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 50 ]; do
    sleep 0.1
    n=$((n + 1))
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$TUNNEL_DIR/$name.pid"
  info "$name: closed (pid $pid)"
}

# every tunnel name with a PID file
open_names() {
  local f
  for f in "$TUNNEL_DIR"/*.pid; do
    [ -e "$f" ] && basename "$f" .pid
  done
  return 0
}

cmd_up() {
  need_cmd python3 "checking local ports"
  ssh_setup
  private_dir "$TUNNEL_DIR"
  local names=("$@") brokers i
  if [ "${#names[@]}" -eq 0 ]; then
    brokers="$(kafka_brokers)"
    names=(k3s-api)
    for ((i = 0; i < brokers; i++)); do names+=("kafka-$i"); done
    names+=(grafana prometheus)
  fi
  say "opening tunnels through the bastion $CA4_BASTION: ${names[*]}"
  for name in "${names[@]}"; do
    case "$name" in
      # the K3s server is edge node 0 (load_nodes checks k3s_server_private_ip says so)
      k3s-api) start_tunnel "$name" "${CA4_NODE_IPS[0]}" 6443 ;;
      kafka-[0-2]) start_tunnel "$name" "${CA4_NODE_IPS[0]}" $((CA4_KAFKA_NODE_PORT_BASE + ${name#kafka-})) ;;
      grafana) start_tunnel "$name" "${CA4_NODE_IPS[0]}" "$CA4_GRAFANA_NODE_PORT" ;;
      prometheus) start_tunnel "$name" "${CA4_NODE_IPS[0]}" "$CA4_PROMETHEUS_NODE_PORT" ;;
      *) local_port "$name" >/dev/null ;;
    esac
  done
}

cmd_down() {
  local names=("$@")
  if [ "${#names[@]}" -eq 0 ]; then
    mapfile -t names < <(open_names)
  fi
  if [ "${#names[@]}" -eq 0 ]; then
    say "no CA4 tunnel is open"
    return 0
  fi
  say "closing tunnels: ${names[*]}"
  for name in "${names[@]}"; do
    local_port "$name" >/dev/null
    stop_tunnel "$name"
  done
}

cmd_status() {
  local names=("$@") explicit=$# down=0 name pid lport state
  if [ "$explicit" -eq 0 ]; then
    names=(k3s-api kafka-0 kafka-1 kafka-2 grafana prometheus)
  fi
  for name in "${names[@]}"; do
    lport="$(local_port "$name")"
    pid="$(pid_of "$name")"
    if [ -n "$pid" ] && port_open "$lport"; then
      state="up    pid $pid, localhost:$lport answers"
    elif [ -n "$pid" ]; then
      state="up    pid $pid, but localhost:$lport does not answer"
      down=1
    elif [ -e "$TUNNEL_DIR/$name.pid" ]; then
      state="down  (stale PID file; 'down' removes it)"
      down=1
    else
      state="down"
      down=1
    fi
    printf '  %-11s %s\n' "$name" "$state"
  done
  if [ "$explicit" -gt 0 ] && [ "$down" -ne 0 ]; then
    return 1
  fi
  return 0
}

main() {
  local cmd="${1:-}"
  case "$cmd" in
    -h | --help | help) usage ;;
    up | down | status)
      shift
      "cmd_$cmd" "$@"
      ;;
    "") usage >&2; exit 2 ;;
    *) die 2 "unknown command '$cmd' (up, down, status; --help)" ;;
  esac
}

main "$@"

#!/bin/sh
# The rehearsal's K3s installer: the interface of K3s's install.sh (get.k3s.io) as
# scripts/bootstrap_k3s_ca4.sh drives it, for a rehearsal node (CA4_K3S_INSTALL_SCRIPT).
#
#   INSTALL_K3S_VERSION=v1.34.3 K3S_TOKEN=... [K3S_URL=https://server:6443] sh -s -- server|agent FLAGS...
#
# As K3s's installer with INSTALL_K3S_SKIP_DOWNLOAD (an air-gapped install), the k3s binary is
# already on the node (here the rehearsal's k3s, services/rehearsal/k3s.py); this writes the same
# files K3s's does, /etc/systemd/system/<unit>.service (ExecStart: k3s and its flags) and
# <unit>.service.env (the K3S_* settings, mode 600), then enables and restarts the unit.
set -eu

fatal() {
  echo "[ERROR] $*" >&2
  exit 1
}

command -v k3s >/dev/null 2>&1 || fatal "no k3s on this node's PATH (the rehearsal places it in /usr/local/sbin)"
command -v systemctl >/dev/null 2>&1 || fatal "no systemctl on this node's PATH"

cmd=${1:-}
if [ -z "$cmd" ] || [ "${cmd#-}" != "$cmd" ]; then
  if [ -n "${K3S_URL:-}" ]; then cmd=agent; else cmd=server; fi
else
  shift
fi
case "$cmd" in
  server) unit=k3s ;;
  agent)
    unit=k3s-agent
    [ -n "${K3S_URL:-}" ] || fatal "an agent needs K3S_URL"
    ;;
  *) fatal "unknown command '$cmd' (server or agent)" ;;
esac
[ -n "${K3S_TOKEN:-}" ] || fatal "K3S_TOKEN is not set"

have=$(k3s --version | awk 'NR==1{print $3}')
if [ -n "${INSTALL_K3S_VERSION:-}" ] && [ "$INSTALL_K3S_VERSION" != "$have" ]; then
  fatal "INSTALL_K3S_VERSION=$INSTALL_K3S_VERSION, but this rehearsal node has Kubernetes $have only (set CA4_K3S_VERSION=$have)"
fi

# quote WORD: WORD in single quotes, for the unit file's ExecStart
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

unit_file=/etc/systemd/system/$unit.service
env_file=$unit_file.env
bin=$(command -v k3s)
echo "[INFO] writing $env_file and $unit_file ($cmd, k3s $have at $bin)"
mkdir -p /etc/systemd/system
umask 077
: >"$env_file"
chmod 600 "$env_file"
for var in K3S_TOKEN K3S_URL; do
  eval "value=\${$var:-}"
  # shellcheck disable=SC2154 # value is set by the eval above
  [ -n "$value" ] && printf "%s=%s\n" "$var" "$(quote "$value")" >>"$env_file"
done
umask 022
exec_line="ExecStart=$bin $cmd"
for arg in "$@"; do exec_line="$exec_line $(quote "$arg")"; done
cat >"$unit_file" <<UNIT
[Unit]
Description=Lightweight Kubernetes (the CA4 rehearsal's)
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
EnvironmentFile=-$env_file
KillMode=process
Restart=always
$exec_line

[Install]
WantedBy=multi-user.target
UNIT

echo "[INFO] systemd: enabling and (re)starting $unit"
systemctl daemon-reload
systemctl enable "$unit"
systemctl restart "$unit"
echo "[INFO] $unit is $(systemctl is-active "$unit")"

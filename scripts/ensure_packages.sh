#!/usr/bin/env bash
# Install Debian packages that are missing, and only those (idempotent; a second run does nothing).
# Usage: scripts/ensure_packages.sh prometheus graphviz ...
# Runs apt-get as root, or through passwordless sudo; otherwise names what to install and fails.
set -euo pipefail

if ! command -v dpkg-query >/dev/null 2>&1; then
  # not Debian/Ubuntu: package names differ and nothing here can check them. Go on; a test
  # that lacks a tool says which one (prometheus, shellcheck, sshd...).
  echo "ensure_packages: no dpkg-query (not a Debian/Ubuntu machine); not checking: $*" >&2
  echo "  install them with your package manager if a test reports one missing (macOS: brew install ...)." >&2
  exit 0
fi

missing=()
for pkg in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_packages: missing ${missing[*]}, and there is no apt-get to install them;" >&2
  echo "install them with your package manager." >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "ensure_packages: missing ${missing[*]}; install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo ">> installing Debian packages: ${missing[*]}"
started=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo ">> installed ${missing[*]} in $(( $(date +%s) - started )) s"

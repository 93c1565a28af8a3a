#!/usr/bin/env bash
# Install what `nox -s diagrams` needs from Debian, and only what is missing: plantuml and
# graphviz (plantuml only recommends graphviz, yet needs it for every diagram but sequence
# diagrams). Idempotent: a second run finds everything installed and does nothing.
# Runs apt-get as root (CI) or through passwordless sudo; otherwise prints the command.
set -euo pipefail

packages=(plantuml graphviz)
missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo ">> diagram tools present: ${packages[*]}"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_diagram_tools: missing ${missing[*]} and no apt-get here; install them with your package manager (macOS: brew install plantuml graphviz)" >&2
  exit 1
fi

if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "ensure_diagram_tools: missing ${missing[*]}; install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo ">> installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo ">> installed ${missing[*]}"

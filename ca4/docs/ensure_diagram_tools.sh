#!/usr/bin/env bash
# Install what `nox -s diagrams` needs from Debian, and only what is missing: plantuml and
# graphviz (plantuml only recommends graphviz, yet needs it for every diagram but sequence
# diagrams). Idempotent: a second run finds everything installed and does nothing.
# The apt part is scripts/ensure_packages.sh (apt-get as root or through passwordless sudo;
# otherwise it prints the command); then plantuml and dot must be on PATH.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
packages=(plantuml graphviz)

"$repo/scripts/ensure_packages.sh" "${packages[@]}"

missing=()
for tool in plantuml dot; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]} > 0)); then
  echo "ensure_diagram_tools: ${missing[*]} not on PATH; install ${packages[*]} with your package manager (macOS: brew install plantuml graphviz)" >&2
  exit 1
fi
echo ">> diagram tools present: ${packages[*]}"

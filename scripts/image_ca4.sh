#!/usr/bin/env bash
# Build the one CA4 image and side-load it into containerd on every edge node.
set -euo pipefail

CA4_SCRIPT=image_ca4.sh
# shellcheck source=scripts/lib/ca4_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/ca4_common.sh"

PLATFORM="${CA4_IMAGE_PLATFORM:-linux/amd64}"
# docker, or a CLI that speaks its build/image inspect/save/info commands (podman needs no daemon)
CLI="${CA4_CONTAINER_CLI:-docker}"

usage() {
  cat <<USAGE
Usage: scripts/image_ca4.sh build|load|check|tag [--help]   (make ca4-image-build / ca4-image-load)

build   $CLI build of ./Dockerfile as $CA4_IMAGE_NAME:git-<commit> for $PLATFORM;
        an existing image of that tag is left alone (same commit, same content).
load    '$CLI save | ssh -J bastion node "k3s ctr -n k8s.io images import -"' on every edge
        node that does not hold the tag yet (building it first when it is not built here). No registry: the nodes never pull it, and
        the manifests say imagePullPolicy: Never.
check   lists, per node, whether it holds the tag (exit 1 when one lacks it).
tag     prints the image reference for this checkout (what ca4-deploy-edge deploys).

The tag is the commit (git-<12 hex>); uncommitted changes to the image's inputs stop the
build unless CA4_IMAGE_ALLOW_DIRTY=1 (then -dirty-<hash of the diff> is appended).
Environment: CA4_IMAGE_PLATFORM (default linux/amd64, the AMI's architecture),
CA4_CONTAINER_CLI (default docker; podman works without a daemon),
CA4_IMAGE_ALLOW_DIRTY, CA4_SSH_KEY, CA4_TF_DIR, CA4_TF_OUTPUTS.
USAGE
}

have_image() { "$CLI" image inspect "$1" >/dev/null 2>&1; }

need_docker() {
  need_cmd "$CLI" "building and exporting the image (CA4_CONTAINER_CLI)"
  "$CLI" info >/dev/null 2>&1 || {
    [ "$CLI" = docker ] &&
      die 2 "no Docker daemon answers ('docker info' failed): start Docker (the CLI alone cannot build), or set CA4_CONTAINER_CLI=podman"
    die 2 "'$CLI info' failed: $CLI cannot build or export images here"
  }
}

# node_has IP IMAGE: true when the node's containerd (namespace k8s.io, the kubelet's) has IMAGE.
# grep reads the whole list (no -q): quitting early could kill ssh with SIGPIPE, and under
# pipefail that would read as "not there".
node_has() {
  node_ssh "$1" "sudo -n k3s ctr -n k8s.io images ls -q" | grep -Fx -- "$2" >/dev/null
}

cmd_build() {
  local tag image
  tag="$(image_tag)"
  image="$CA4_IMAGE_NAME:$tag"
  need_docker
  if have_image "$image"; then
    say "$image already built; left alone"
    return 0
  fi
  say "building $image for $PLATFORM"
  "$CLI" build --platform "$PLATFORM" \
    --label "org.opencontainers.image.revision=$(git -C "$CA4_REPO_ROOT" rev-parse HEAD)" \
    --label "org.opencontainers.image.version=$tag" \
    -t "$image" -f "$CA4_REPO_ROOT/Dockerfile" "$CA4_REPO_ROOT"
  say "built $image"
}

cmd_load() {
  local tag image ip
  tag="$(image_tag)"
  image="$CA4_IMAGE_NAME:$tag"
  need_docker
  if ! have_image "$image"; then
    say "$image is not built here yet: building it first (as make ca4-image-build)"
    cmd_build
  fi
  ssh_setup
  for ip in "${CA4_NODE_IPS[@]}"; do
    if node_has "$ip" "$image"; then
      info "node $ip: holds $image; left alone"
      continue
    fi
    say "node $ip: importing $image"
    "$CLI" save "$image" | gzip -1 |
      node_ssh "$ip" "gunzip | sudo -n k3s ctr -n k8s.io images import -" ||
      die 1 "node $ip: the import failed"
    node_has "$ip" "$image" || die 1 "node $ip: $image is still not listed after the import"
  done
  say "$image is on all ${#CA4_NODE_IPS[@]} node(s)"
}

cmd_check() {
  local image ip missing=0
  image="$CA4_IMAGE_NAME:$(image_tag)"
  ssh_setup
  for ip in "${CA4_NODE_IPS[@]}"; do
    if node_has "$ip" "$image"; then
      info "node $ip: has $image"
    else
      info "node $ip: lacks $image"
      missing=1
    fi
  done
  return "$missing"
}

case "${1:-}" in
  -h | --help | help) usage ;;
  build) cmd_build ;;
  load) cmd_load ;;
  check) cmd_check ;;
  tag)
    tag="$(image_tag)"
    printf '%s:%s\n' "$CA4_IMAGE_NAME" "$tag"
    ;;
  "")
    usage >&2
    exit 2
    ;;
  *) die 2 "unknown command '$1' (build, load, check, tag; --help)" ;;
esac

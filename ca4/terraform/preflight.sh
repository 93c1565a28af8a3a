#!/usr/bin/env bash
# What `make plan|apply|destroy` needs, checked before anything runs: every missing piece
# is named at once, and nothing touches the network unless credentials are configured.
#
#   preflight.sh TARGET CHECK...      CHECK: binary | credentials | variables
#
# Environment (the Makefile passes its variables through):
#   TF         binary to use; empty: terraform, else tofu, from PATH
#   AWS_CHECK  how credentials are looked for:
#              auto (default)  one of the usual sources must be configured - AWS_ACCESS_KEY_ID
#                              with AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE,
#                              a container credentials URI, ~/.aws/credentials or ~/.aws/config
#                              (AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE); when the aws CLI
#                              exists, `aws sts get-caller-identity` must then accept them
#              sts             always ask STS (an EC2 instance profile, with no variables or
#                              files); needs the aws CLI
#              skip            no check; Terraform reports bad credentials itself
#   VAR_FILE   an extra -var-file the Makefile passes to Terraform (optional)
#
# Exit status: 0 ready, 2 something is missing (the message says what), 64 bad usage.
set -euo pipefail

target=${1:?usage: preflight.sh TARGET binary|credentials|variables...}
shift
missing=()

# Variables without a default: Terraform would stop on them anyway, but only after init.
REQUIRED_VARIABLES=(aws_region my_ip_cidr ssh_key_name db_password)

check_binary() {
  local tf=${TF:-}
  [[ -n $tf ]] && command -v "$tf" >/dev/null 2>&1 && return 0
  if [[ -z $tf || $tf == terraform || $tf == tofu ]]; then
    missing+=("a Terraform binary: neither terraform nor tofu is on PATH (install Terraform >= 1.6 or OpenTofu >= 1.6, or set TF=/path/to/binary)")
  else
    missing+=("a Terraform binary: TF=$tf is not an executable on PATH")
  fi
}

# True when one of the credential sources the AWS SDKs read without a network call is set.
credentials_configured() {
  [[ -n ${AWS_ACCESS_KEY_ID:-} && -n ${AWS_SECRET_ACCESS_KEY:-} ]] && return 0
  [[ -n ${AWS_PROFILE:-} || -n ${AWS_WEB_IDENTITY_TOKEN_FILE:-} ]] && return 0
  [[ -n ${AWS_CONTAINER_CREDENTIALS_FULL_URI:-} || -n ${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI:-} ]] && return 0
  [[ -f ${AWS_SHARED_CREDENTIALS_FILE:-${HOME:-/nonexistent}/.aws/credentials} ]] && return 0
  [[ -f ${AWS_CONFIG_FILE:-${HOME:-/nonexistent}/.aws/config} ]] && return 0
  return 1
}

ask_sts() {
  local out
  if out=$(aws sts get-caller-identity --query Arn --output text --cli-connect-timeout 5 --cli-read-timeout 10 2>&1); then
    echo ">> AWS identity: $out"
  else
    out=${out//$'\n'/ }
    missing+=("valid AWS credentials: \`aws sts get-caller-identity\` failed: ${out:0:300}")
  fi
}

check_credentials() {
  case ${AWS_CHECK:-auto} in
    skip)
      echo ">> AWS credentials not checked (AWS_CHECK=skip)"
      ;;
    sts)
      if command -v aws >/dev/null 2>&1; then
        ask_sts
      else
        missing+=("the aws CLI, which AWS_CHECK=sts needs to ask STS for the caller identity")
      fi
      ;;
    auto)
      if ! credentials_configured; then
        missing+=("AWS credentials: none of AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE, AWS_CONTAINER_CREDENTIALS_*_URI, ~/.aws/credentials or ~/.aws/config is set (with an EC2 instance profile, run with AWS_CHECK=sts)")
      elif command -v aws >/dev/null 2>&1; then
        ask_sts
      fi
      ;;
    *)
      echo "preflight.sh: AWS_CHECK must be auto, sts or skip, not '${AWS_CHECK}'" >&2
      exit 64
      ;;
  esac
}

# A variable has a value when TF_VAR_<name> is set or a file Terraform loads assigns it.
check_variables() {
  local files=() name file line unassigned=()
  [[ -f terraform.tfvars ]] && files+=(terraform.tfvars)
  for file in *.auto.tfvars; do [[ -f $file ]] && files+=("$file"); done
  if [[ -n ${VAR_FILE:-} ]]; then
    if [[ -f $VAR_FILE ]]; then
      files+=("$VAR_FILE")
    else
      missing+=("the variable file VAR_FILE=$VAR_FILE")
    fi
  fi
  for name in "${REQUIRED_VARIABLES[@]}"; do
    local var="TF_VAR_${name}"
    [[ -n ${!var:-} ]] && continue
    for file in ${files[@]+"${files[@]}"}; do  # (bash 3.2 safe with set -u)
      while IFS= read -r line || [[ -n $line ]]; do
        [[ $line =~ ^[[:space:]]*${name}[[:space:]]*= ]] && continue 3
      done <"$file"
    done
    unassigned+=("$name")
  done
  if ((${#unassigned[@]})); then
    local names
    names=$(printf '%s, ' "${unassigned[@]}")
    missing+=("values for ${names%, }: set them in ca4/terraform/terraform.tfvars (cp terraform.tfvars.example terraform.tfvars) or as TF_VAR_<name>")
  fi
}

for check in "$@"; do
  case $check in
    binary) check_binary ;;
    credentials) check_credentials ;;
    variables) check_variables ;;
    *)
      echo "preflight.sh: unknown check '$check' (binary, credentials, variables)" >&2
      exit 64
      ;;
  esac
done

if ((${#missing[@]})); then
  {
    echo "ca4/terraform: cannot run 'make $target'; missing:"
    printf '  - %s\n' "${missing[@]}"
  } >&2
  exit 2
fi

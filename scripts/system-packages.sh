#!/usr/bin/env bash
# The Debian/Ubuntu packages the test suite runs for real, installed where missing; `make test` runs this first.
#   docker-registry   tests/oci start a real OCI registry (CNCF distribution 2.8) on a free loopback port
#   openssh-server    tests/remote start a real sshd on a free loopback port, log in to it with ssh
#   openssh-client    (openssh-client) and deploy to host:path with rsync over ssh (rsync)
#   rsync
# As root it runs apt-get itself, otherwise through `sudo -n` where that works without a password; failing both
# it stops at once with one line naming the packages and the command to run, before the long test run. The
# packages' own system services are not wanted (the tests start their own), so the services of the packages it
# installed are stopped and disabled. It uses shell builtins and the commands named here, looked up on PATH.
set -euo pipefail

missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
command -v rsync >/dev/null || missing+=(rsync)
[ ${#missing[@]} -eq 0 ] && exit 0

need="make test needs the system packages ${missing[*]} (tests/oci runs a registry, tests/remote an sshd and rsync)"
if ! command -v apt-get >/dev/null; then
  echo "error: $need and there is no apt-get here: install them with this system's package manager" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" = 0 ]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root() { sudo -n env DEBIAN_FRONTEND=noninteractive "$@"; }
else
  if command -v sudo >/dev/null; then
    run="Run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
  else
    run="Run as root: apt-get update && apt-get install -y ${missing[*]}"
  fi
  echo "error: $need; installing them needs root or sudo without a password. $run, then make test again" >&2
  exit 1
fi

echo "installing the system packages the tests need: apt-get install -y ${missing[*]}" >&2
as_root apt-get update -qq
as_root apt-get install -y -qq "${missing[@]}" >/dev/null

services=()
for package in "${missing[@]}"; do
  case "$package" in
    docker-registry) services+=(docker-registry.service) ;;
    openssh-server) services+=(ssh.service) ;;
  esac
done
if [ ${#services[@]} -gt 0 ] && command -v systemctl >/dev/null; then
  # where systemd is not running (a container) there is no service to stop, and systemctl fails: nothing to do
  as_root systemctl disable --now "${services[@]}" 2>/dev/null || true
fi

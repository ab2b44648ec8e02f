#!/usr/bin/env bash
# Builds the offline Bazel toolchain root: Debian sid with bazel-bootstrap 7.7.1 and its
# bzlmod rule sets, Python 3.11, OpenJDK 17 and podman from bookworm, the host's CA trust, stub
# modules for what Debian does not package, and /etc/bazel.bazelrc with the overrides.
# Usage: provision.sh ROOT   (tools/bazel calls it; the hash of this folder names ROOT)
set -euo pipefail

root="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mirror="${FRAUD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

need() {
  if ! command -v "$1" >/dev/null; then
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
      echo "provision: installing $2 on the host" >&2
      apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
    else
      echo "provision: '$1' is missing; install the '$2' package (needs root)" >&2
      exit 1
    fi
  fi
}
need mmdebstrap mmdebstrap
need bwrap bubblewrap
if [[ $EUID -ne 0 ]]; then
  echo "provision: building the toolchain root needs root (mmdebstrap, chroot)" >&2
  exit 1
fi

packages=(
  bazel-bootstrap bazel-rules-python bazel-rules-pkg bazel-aspect-bazel-lib bazel-lib
  bazel-skylib bazel-platforms bazel-rules-cc bazel-rules-java bazel-rules-shell
  bazel-rules-license bazel-rules-proto bazel-features
  ca-certificates ca-certificates-java python3.11 openjdk-17-jdk-headless
  procps unzip xz-utils binutils zstd git
  # Containers (image tests, load, compose): bookworm's podman, like the hosts it shares
  # /var/lib/containers with, and a loopback OCI registry and skopeo for push tests.
  podman/bookworm runc/bookworm conmon/bookworm netavark/bookworm aardvark-dns/bookworm
  golang-github-containers-common/bookworm golang-github-containers-image/bookworm
  skopeo/bookworm docker-registry/bookworm iptables
  # The push targets' registry client (go-containerregistry's crane); Debian has it in sid only.
  crane/sid
)

tmp="$root.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
# The mirror is a frozen snapshot: its sid Release file has expired.
mmdebstrap --variant=apt --aptopt='Acquire::Check-Valid-Until "false"' \
  --include="$(IFS=,; echo "${packages[*]}")" \
  sid "$tmp" "deb $mirror sid main" "deb $mirror bookworm main" >&2

# Trust the same CAs as the host (the egress proxy re-signs TLS).
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$tmp/usr/local/share/ca-certificates/"
fi
# bwrap rather than chroot: the Java keystore hook needs /proc to run keytool.
bwrap --bind "$tmp" / --proc /proc --dev /dev --tmpfs /tmp update-ca-certificates --fresh >&2
if ! grep -q . "$tmp/etc/ssl/certs/java/cacerts"; then
  echo "provision: the Java CA keystore was not written" >&2
  exit 1
fi

# Stub modules for dependencies of the Debian rule sets that are not packaged.
mkdir -p "$tmp/opt/fraud-toolchain"
cp -r "$here/files/stubs" "$tmp/opt/fraud-toolchain/stubs"
cp "$here/files/bazel.bazelrc" "$tmp/etc/bazel.bazelrc"
# Podman on these kernels: runc (crun fails on their cgroups), cgroupfs, no ulimits.
cp "$here/files/containers.conf" "$tmp/etc/containers/containers.conf"

# The local Python 3.11 stands in for rules_python's downloaded interpreter.
py="$tmp/opt/fraud-toolchain/python3_11"
mkdir -p "$py/bin"
ln -s /usr/bin/python3.11 "$py/bin/python3"
ln -s /usr/bin/python3.11 "$py/python"
cp "$here/files/python3_11.BUILD.bazel" "$py/BUILD.bazel"
touch "$py/WORKSPACE"

touch "$tmp/.fraud-toolchain-ready"
rm -rf "$root"
mv "$tmp" "$root"
trap - EXIT

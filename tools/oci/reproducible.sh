#!/usr/bin/env bash
# Builds every image twice, each time in a new, empty Bazel output base, and compares the
# image digests: the check that two clean builds of the same commit give the same bytes.
# Takes minutes (everything is built twice from scratch; downloads come from the shared
# repository cache). Usage: tools/oci/reproducible.sh [TARGET...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(
    //services/producer:image //services/detector:image //services/alert_sink:image
    //services/quality:image //infra/images:kafka_image //infra/images:postgres_image
    //infra/images:prometheus_image
  )
fi
scratch="$(mktemp -d /tmp/fraud-reproducible.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
digests() {  # output base -> "target digest" lines
  local base="$1"
  tools/bazel --output_base="$base" build --noshow_progress "${targets[@]}" >&2
  local bin
  bin="$(tools/bazel --output_base="$base" info bazel-bin 2>/dev/null)"
  for target in "${targets[@]}"; do
    local path="${target#//}"
    path="${path/://}"
    python3 -c 'import json,sys; print(sys.argv[1], json.load(open(sys.argv[2]))["manifests"][0]["digest"])' \
      "$target" "$bin/$path/index.json"
  done
  tools/bazel --output_base="$base" shutdown >&2
}
for run in 1 2; do
  started=$SECONDS
  echo "reproducible: clean build $run of ${#targets[@]} images in $scratch/ob$run" >&2
  digests "$scratch/ob$run" >"$scratch/digests$run"
  echo "reproducible: build $run took $((SECONDS - started)) s" >&2
done
cat "$scratch/digests1"
if diff -u "$scratch/digests1" "$scratch/digests2" >&2; then
  echo "reproducible: both clean builds gave the same ${#targets[@]} digests"
else
  echo "reproducible: the digests differ (above)" >&2
  exit 1
fi

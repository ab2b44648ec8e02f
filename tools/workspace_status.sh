#!/usr/bin/env bash
# Bazel's workspace status (.bazelrc): the git revision and remote that `--stamp` builds
# write into image labels. Prints nothing it cannot find, so builds outside git work.
set -uo pipefail
if commit="$(git rev-parse HEAD 2>/dev/null)"; then
  if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    commit="$commit-dirty"
  fi
  echo "STABLE_GIT_COMMIT $commit"
fi
if remote="$(git remote get-url origin 2>/dev/null)"; then
  echo "STABLE_GIT_REMOTE $remote"
fi

#!/usr/bin/env bash
# Zip each function `sam build` produced: <out>/<Function>.zip holding an
# executable `bootstrap`, the artifact Lambda's provided.al2023 runtime takes.
set -euo pipefail
build=${1:-target/sam-build}
out=${2:-target/lambda-zips}
mkdir -p "$out"
for dir in "$build"/*/; do
  name=$(basename "$dir")
  [ -f "$dir/bootstrap" ] || continue
  rm -f "$out/$name.zip"
  python3 -m zipfile -c "$out/$name.zip" "$dir/bootstrap"
  printf '%-24s %s  %s\n' "$name" "$(file -b "$dir/bootstrap" | cut -d, -f1-2)" "$out/$name.zip"
done

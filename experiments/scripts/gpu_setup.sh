#!/usr/bin/env bash
# Seed an offline GPU host (no package registry) from what a call carried into the repository:
#   .whl/*.whl             the wheels the host lacks (../shared/notes/gpu-host.md lists them)
#   .assets/<any>/data.tgz a packed <cache>/data folder
#   .assets/<any>/<file>.part.*  pieces of a large asset file (joined in name order into <cache>/files/<file>)
# Parts may arrive over several calls: each call's pieces are kept in $KEEP until all are there.
# The harness verifies every sha256 before use, so a truncated or missing piece is refused, never used.
# Usage: source experiments/scripts/gpu_setup.sh   (sets PYTHONPATH and WINA_CACHE)
SITE=${SITE:-/tmp/site}
KEEP=${KEEP:-/tmp/wina-keep}
export WINA_CACHE=${WINA_CACHE:-$KEEP/cache}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
fi
export PYTHONPATH=$SITE:$PWD HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "$KEEP/parts" "$WINA_CACHE/files"
cp -r .assets/*/* "$KEEP/parts/" 2>/dev/null
if [ -f "$KEEP/parts/data.tgz" ] && [ ! -d "$WINA_CACHE/data" ]; then tar xzf "$KEEP/parts/data.tgz" -C "$WINA_CACHE"; fi
for f in $(ls "$KEEP/parts" | grep '\.part\.' | sed 's/\.part\..*//' | sort -u); do
  cat "$KEEP/parts/$f".part.* > "$WINA_CACHE/files/$f"
done

#!/usr/bin/env bash
# On an offline GPU host (no registry): install the carried wheels (.whl/) and seed the asset cache from
# carried parts (.assets/*/): data.tgz (a packed <cache>/data folder) and <file>.part.* pieces of big files.
# Files are joined into <cache>/files/<file>; the harness verifies every sha256 before use.
# Usage: source experiments/gpu_setup.sh   (sets PYTHONPATH and WINA_CACHE)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD WINA_CACHE=/root/keep/cache HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p /root/keep/parts "$WINA_CACHE/files"
cp -r .assets/*/* /root/keep/parts/ 2>/dev/null
if [ -f /root/keep/parts/data.tgz ] && [ ! -d "$WINA_CACHE/data" ]; then tar xzf /root/keep/parts/data.tgz -C "$WINA_CACHE"; fi
for f in $(ls /root/keep/parts | grep '\.part\.' | sed 's/\.part\..*//' | sort -u); do
  cat /root/keep/parts/"$f".part.* > "$WINA_CACHE/files/$f"
done

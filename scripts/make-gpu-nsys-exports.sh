#!/usr/bin/env bash
# On the GPU device machine: make the real GPU nsys exports for tests/data (docs/nsys.md).
# Before (here): the vLLM bundle and Debian's libdw1/libelf1 as in ../shared/gpu/README.md
# ("Nsight Systems on the device"), carried as .gpu/c*, .gpu/tools, .gpu/libs. On the device:
#   bash .gpu/tools/device-unpack.sh && bash scripts/make-gpu-nsys-exports.sh $OUT [extra args]
# Writes $OUT/nsys-gpu-<version>-<mode>.sqlite + .json (one per capture mode) and the server logs;
# copy the .sqlite/.json pairs to tests/data and add them to tests/data/README.md.
set -uo pipefail
out=${1:?usage: make-gpu-nsys-exports.sh OUT_DIR [extra make_gpu_nsys_exports.py args]}
shift
cd "$(dirname "$0")/.."
mkdir -p "$out"
# nsys' report importer (QdstrmImporter) needs libdw.so.1, which the device image lacks.
if [ -d .gpu/libs/x/usr/lib/x86_64-linux-gnu ]; then
    mkdir -p /tmp/libs && cp -a .gpu/libs/x/usr/lib/x86_64-linux-gnu/* /tmp/libs/
    export LD_LIBRARY_PATH=/tmp/libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
export HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 PYTHONUNBUFFERED=1
export PYTHONPATH=${VLLM_SITE:-/tmp/site}:$PWD/src${PYTHONPATH:+:$PYTHONPATH}
model=/tmp/qwen3-4l
[ -f "$model/config.json" ] || python3 .gpu/tools/make_model.py "$model" 4
python3 scripts/make_gpu_nsys_exports.py --model "$model" --layers 4 --out "$out" --python python3 "$@" \
    2>&1 | tee "$out/make-gpu-nsys-exports.log"
rc=${PIPESTATUS[0]}
ls -la "$out"
exit "$rc"

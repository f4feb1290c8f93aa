#!/usr/bin/env bash
# Make the real nsys CPU exports in tests/data (their origin: tests/data/README.md).
# Needs the nsys of scripts/setup-nsys.sh (Debian's 2022.4.2.1) and gcc. Run from anywhere:
#   bash scripts/make-cpu-nsys-exports.sh [OUT_DIR]     (default tests/data)
#   nsys-2022.4-profile-nvtx.sqlite  `nsys profile` of scripts/nsys/nvtx_steps.c (3 rounds), exported
#                                    with --lazy=false: every table of the 2022.4 schema, GPU ones empty
#   nsys-2022.4-session-nvtx.sqlite  the first of two `nsys start`/`nsys stop` captures of a
#                                    `nsys launch`ed nvtx_steps (200 rounds, ~10 s)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-tests/data}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
nvtx_include=$(dirname "$(find /usr/lib /opt/nvidia /usr/local -path '*nvtx/include/nvtx3/nvToolsExt.h' 2>/dev/null | head -1)")/..
gcc -O1 -o "$work/nvtx_steps" scripts/nsys/nvtx_steps.c -I"$nvtx_include" -ldl
quiet=(--sample=none --cpuctxsw=none)

nsys profile "${quiet[@]}" --trace=nvtx,osrt --output="$work/profile" --force-overwrite=true "$work/nvtx_steps" 3
nsys export --type sqlite --lazy=false --force-overwrite=true --output "$out/nsys-2022.4-profile-nvtx.sqlite" "$work/profile.nsys-rep"

session="make-cpu-exports-$$"
nsys launch --session-new="$session" --trace=nvtx,osrt "$work/nvtx_steps" 200 > "$work/launch.log" 2>&1 &
launch_pid=$!
for _ in $(seq 50); do nsys sessions list | grep -q "$session" && break; sleep 0.2; done
for n in 1 2; do
    nsys start --session="$session" "${quiet[@]}" --output="$work/session.$n" --force-overwrite=true
    sleep 1
    nsys stop --session="$session"
done
wait "$launch_pid" || true
nsys export --type sqlite --force-overwrite=true --output "$out/nsys-2022.4-session-nvtx.sqlite" "$work/session.1.nsys-rep"
ls -la "$out"/nsys-2022.4-*.sqlite

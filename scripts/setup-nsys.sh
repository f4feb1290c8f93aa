#!/usr/bin/env bash
# Prepare this machine (Debian 12, root; CI too) for the real-nsys tests: install Debian's
# Nsight Systems 2022.4.2.1 (packages nsight-systems + nsight-systems-target, components
# `contrib non-free` of the same Debian mirror the machine already uses) and fix the importer
# path the package misplaces. Idempotent: does nothing when `nsys` already exports reports.
#
# Why the symlink: the package puts the report importer under /usr/lib/nsight-systems/host-linux-x64
# while nsys looks for it under /usr/lib/x86_64-linux-gnu/nsight-systems/host-linux-x64; without it
# `nsys profile` stops after "Generating ...qdstrm" and no .nsys-rep is written (issue 14).
set -euo pipefail

IMPORTER_DIR=/usr/lib/nsight-systems/host-linux-x64
EXPECTED_DIR=/usr/lib/x86_64-linux-gnu/nsight-systems/host-linux-x64

fix_importer_path() {
    if [ -d "$IMPORTER_DIR" ] && [ ! -e "$EXPECTED_DIR" ]; then
        mkdir -p "$(dirname "$EXPECTED_DIR")"
        ln -s "$IMPORTER_DIR" "$EXPECTED_DIR"
        echo "setup-nsys: linked $EXPECTED_DIR -> $IMPORTER_DIR"
    fi
}

if command -v nsys >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then fix_importer_path; fi
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-nsys: nsys is missing and this is not a Debian root shell; install Nsight Systems" \
         "yourself (the real-nsys tests skip without it)" >&2
    exit 0
fi

# Add `contrib non-free` to the machine's own Debian sources (deb822 or one-line format), so
# the packages come from the same mirror as everything else.
add_components() {
    local changed=0 f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        grep -q '^URIs:.*debian' "$f" || continue
        if grep -q '^Components:' "$f" && ! grep -qE '^Components:.* non-free( |$)' "$f"; then
            sed -i -E '/^Components:/ { / contrib( |$)/! s/$/ contrib/; / non-free( |$)/! s/$/ non-free/ }' "$f"
            changed=1
        fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        if grep -qE '^deb .*debian.* main' "$f" && ! grep -qE '^deb .*debian.* non-free( |$)' "$f"; then
            sed -i -E '/^deb .*debian/ { / contrib( |$)/! s/$/ contrib/; / non-free( |$)/! s/$/ non-free/ }' "$f"
            changed=1
        fi
    done
    if [ "$changed" = 1 ]; then echo "setup-nsys: added contrib non-free to the Debian sources"; fi
}

add_components
echo "setup-nsys: installing Debian's nsight-systems (Nsight Systems 2022.4, CPU sampling and OS runtime tracing)"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends nsight-systems nsight-systems-target
fix_importer_path
nsys --version

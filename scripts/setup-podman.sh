#!/usr/bin/env bash
# Prepare this machine (Debian, root; CI too) for the container launcher tests against a
# real Podman API:
#   1. install podman + runc + busybox-static when podman is missing;
#   2. write /etc/containers/containers.conf (runc runtime, lowered ulimits) unless it is
#      already so — crun refuses hybrid cgroups here and the sandbox forbids Podman's default
#      RLIMIT_NOFILE/NPROC (see shared/ci/podman.md);
#   3. build the local test image `localhost/pvp-busybox:1` when it is missing (nothing can
#      be pulled here: a busybox root filesystem imported with `podman import`).
# Idempotent; starts no long-lived service (the tests start `podman system service` and
# stop it themselves).
set -euo pipefail

IMAGE="${PVP_TEST_IMAGE:-localhost/pvp-busybox:1}"
CONF=/etc/containers/containers.conf

if ! command -v podman >/dev/null 2>&1; then
    echo "setup-podman: installing podman runc busybox-static"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends podman runc busybox-static
fi
if ! command -v runc >/dev/null 2>&1 || [ ! -x /bin/busybox ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends runc busybox-static
fi

WANTED_CONF='[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"'
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$WANTED_CONF" ]; then
    if [ -f "$CONF" ] && grep -q 'runtime *= *"runc"' "$CONF" && grep -q 'nofile=1024' "$CONF"; then
        echo "setup-podman: $CONF already selects runc and lowered ulimits; left as is"
    else
        mkdir -p /etc/containers
        [ -f "$CONF" ] && cp "$CONF" "$CONF.bak-pvp"
        printf '%s\n' "$WANTED_CONF" > "$CONF"
        echo "setup-podman: wrote $CONF"
    fi
fi

if ! podman image exists "$IMAGE"; then
    echo "setup-podman: building $IMAGE from a busybox root filesystem"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    root="$work/rootfs"
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/proc" "$root/sys" "$root/dev" \
             "$root/usr" "$root/lib" "$root/lib64" "$root/traces" "$root/models"
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for tool in sh ls cat echo sleep env true false mkdir wget; do
        ln -sf busybox "$root/bin/$tool"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
    printf 'root:x:0:\n' > "$root/etc/group"
    tar -C "$root" -cf "$work/rootfs.tar" .
    podman import --change 'CMD ["/bin/sh"]' "$work/rootfs.tar" "$IMAGE" >/dev/null
    echo "setup-podman: built $IMAGE"
fi
echo "setup-podman: ready (podman $(podman --version | awk '{print $3}'), image $IMAGE)"

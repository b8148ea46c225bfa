#!/usr/bin/env bash
# cargo for aarch64-unknown-linux-gnu on an x86_64 Debian machine, tests run
# under qemu-aarch64: `tools/cross-aarch64.sh test -p lcnet-core --test kernels`.
#
# `tools/cross-aarch64.sh --install` first installs Debian's packages (as
# root, idempotent): rustc/cargo 1.96 with the aarch64 standard library for
# exactly that compiler, the cross linker and qemu-user. The pinned rustup
# toolchain has no aarch64 standard library, hence RUSTC=/usr/bin/rustc.
#
# No `-L /usr/aarch64-linux-gnu`: with the cross glibc of libc6-arm64-cross
# every threaded program hangs under qemu; without it the emulated loader
# finds the multiarch libc6:arm64 in /lib/aarch64-linux-gnu and threads work.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--install" ]]; then
    shift
    packages=(rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
    installed=$(dpkg-query -W -f='${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
    if [[ $(grep -cx installed <<<"$installed") -eq ${#packages[@]} ]]; then
        echo "== aarch64 cross toolchain already installed"
    else
        sudo=$([[ $(id -u) -eq 0 ]] || echo sudo)
        $sudo dpkg --add-architecture arm64
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
    fi
    [[ $# -eq 0 ]] && exit 0
fi

export RUSTC=/usr/bin/rustc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
export RUSTDOC=/usr/bin/rustdoc
# Debian's cargo, beside Debian's rustc (rustup's proxy would pick 1.95);
# the target goes before a `--` that starts the test binary's own arguments.
args=()
target=(--target aarch64-unknown-linux-gnu --target-dir target/aarch64)
for arg in "$@"; do
    if [[ "$arg" == "--" && ${#target[@]} -gt 0 ]]; then
        args+=("${target[@]}")
        target=()
    fi
    args+=("$arg")
done
exec /usr/bin/cargo "${args[@]}" "${target[@]}"

# Build image for `cross build --target aarch64-unknown-linux-gnu` (cross/Cross.toml).
#
# Ubuntu 20.04 (focal) pins the binary's glibc floor: its cross libc is glibc 2.31, what
# Jetson (JetPack 5, Ubuntu 20.04) has; Raspberry Pi OS bookworm (2.36) and Ubuntu 22.04
# (2.35) run it too. The newest cross-rs images are Ubuntu 24.04 (glibc 2.39): too new.
# cross mounts the host's Rust toolchain and the project; this image only brings the
# C cross toolchain (tract-linalg's assembly kernels, linking) and qemu for `cross test`.
# libclang (the v4l crate's bindgen) is installed by the pre-build step in Cross.toml.
FROM ubuntu:20.04

ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install --assume-yes --no-install-recommends \
        ca-certificates curl git make pkg-config \
        gcc g++ libc6-dev \
        gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross \
        qemu-user \
    && rm -rf /var/lib/apt/lists/*
# GStreamer for the target (feature gstreamer; focal has 1.16, JetPack 5's), from Ubuntu's
# ports archive as a foreign architecture; pkg-config finds it through PKG_CONFIG_PATH below.
RUN dpkg --add-architecture arm64 \
    && sed -i 's/^deb http/deb [arch=amd64] http/' /etc/apt/sources.list \
    && for s in focal focal-updates focal-security; do \
         echo "deb [arch=arm64] http://ports.ubuntu.com/ubuntu-ports $s main universe"; \
       done > /etc/apt/sources.list.d/ports.list \
    && apt-get update && apt-get install --assume-yes --no-install-recommends \
        libgstreamer1.0-dev:arm64 libgstreamer-plugins-base1.0-dev:arm64 \
    && rm -rf /var/lib/apt/lists/*

ENV PKG_CONFIG_PATH_aarch64_unknown_linux_gnu=/usr/lib/aarch64-linux-gnu/pkgconfig \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/lib/aarch64-linux-gnu" \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++ \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=/usr/aarch64-linux-gnu" \
    PKG_CONFIG_ALLOW_CROSS=1

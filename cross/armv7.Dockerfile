# Build image for `cross build --target armv7-unknown-linux-gnueabihf` (cross/Cross.toml).
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
        gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf libc6-dev-armhf-cross \
        qemu-user \
    && rm -rf /var/lib/apt/lists/*
# GStreamer for the target (feature gstreamer; focal has 1.16, JetPack 5's), from Ubuntu's
# ports archive as a foreign architecture; pkg-config finds it through PKG_CONFIG_PATH below.
RUN dpkg --add-architecture armhf \
    && sed -i 's/^deb http/deb [arch=amd64] http/' /etc/apt/sources.list \
    && for s in focal focal-updates focal-security; do \
         echo "deb [arch=armhf] http://ports.ubuntu.com/ubuntu-ports $s main universe"; \
       done > /etc/apt/sources.list.d/ports.list \
    && apt-get update && apt-get install --assume-yes --no-install-recommends \
        libgstreamer1.0-dev:armhf libgstreamer-plugins-base1.0-dev:armhf \
    && rm -rf /var/lib/apt/lists/*

ENV PKG_CONFIG_PATH_armv7_unknown_linux_gnueabihf=/usr/lib/arm-linux-gnueabihf/pkgconfig \
    CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc \
    CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER="qemu-arm -L /usr/arm-linux-gnueabihf -E LD_LIBRARY_PATH=/usr/lib/arm-linux-gnueabihf" \
    CC_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc \
    CXX_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-g++ \
    AR_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-ar \
    BINDGEN_EXTRA_CLANG_ARGS_armv7_unknown_linux_gnueabihf="--sysroot=/usr/arm-linux-gnueabihf" \
    PKG_CONFIG_ALLOW_CROSS=1

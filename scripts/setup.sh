#!/usr/bin/env bash
# Installs what building and testing need, only when it is missing: OpenBLAS (libopenblas-dev)
# and pkg-config from Debian. Safe to run again and again.
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
command -v swift >/dev/null || { echo "error: the Swift toolchain is not on PATH (https://swift.org/install)" >&2; exit 1; }
if ! pkg-config --exists openblas 2>/dev/null; then
    echo "setup: installing libopenblas-dev and pkg-config (apt)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas-dev pkg-config >/dev/null
fi
# A real browser for the page tests (llm explain's report): Debian's Chromium and its WebDriver.
if [ "$(uname -s)" = Linux ] && ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
    echo "setup: installing chromium and chromium-driver (apt), for the browser tests"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# Open MPI for data-parallel training (mpirun -np N llm train ...). Apple systems skip it: the
# package then builds without MPI (Sources/CMPI/shim.h) and llm refuses to run under mpirun.
if [ "$(uname -s)" = Linux ] && ! { pkg-config --exists ompi-c 2>/dev/null && command -v mpirun >/dev/null; }; then
    echo "setup: installing libopenmpi-dev and openmpi-bin (apt), for training over MPI"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenmpi-dev openmpi-bin >/dev/null
fi
# OpenAI's Python client, for the end-to-end test of llm serve (scripts/e2e/openai_client.py).
if ! python3 -c "import openai" 2>/dev/null; then
    echo "setup: installing the openai Python client (pip), for the server's end-to-end test"
    python3 -m pip install -q "openai==3.51.0"
fi

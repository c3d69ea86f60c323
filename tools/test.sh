#!/usr/bin/env bash
# Every check resdepth has, from a fresh clone: install into .venv, notebooks clean and exported, README current,
# nbdev-test on the notebooks, and pytest (which runs `resdepth run` and `resdepth book` end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
export RESDEPTH_TEST_DATA="${RESDEPTH_TEST_DATA:-$(cd .. && pwd)/shared/data/medmnist}"
export PYTHONUNBUFFERED=1

step() { echo; echo "== $* ($(date +%T))"; }

step "install"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import resdepth, torch, fastai; print('resdepth', resdepth.__version__, '| torch', torch.__version__, '| fastai', fastai.__version__)"
if ! command -v chromium >/dev/null 2>&1; then
  step "install headless Chromium for the book test"
  if [ "$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium >/dev/null); else sudo apt-get install -y -qq chromium >/dev/null; fi
fi
export PATH="$PWD/.venv/bin:$PATH"

step "notebooks are clean (nbdev-clean changes nothing)"
nbdev-clean
nbdev-clean --fname book
nbdev-clean --fname resdepth/templates/cell.ipynb
git diff --exit-code --stat -- nbs book resdepth/templates

step "the library matches the notebooks (nbdev-export changes nothing)"
nbdev-export
git diff --exit-code --stat -- resdepth
test -z "$(git status --porcelain -- resdepth)" || { git status --porcelain -- resdepth; echo "nbdev-export made files that are not committed"; exit 1; }

step "README.md matches nbs/index.ipynb"
python tools/readme.py --check

step "nbdev-test"
nbdev-test --n-workers 2

step "pytest"
pytest

#!/usr/bin/env bash
# One-time set-up on a fresh machine: .venv with torch (pinned, CPU wheel), worldpolicy and its extras, test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -s .ci/apt-packages.txt ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && xargs -a .ci/apt-packages.txt apt-get install -y -qq --no-install-recommends) >/dev/null \
    || echo "setup: system packages (offscreen rendering, FFmpeg for torchcodec) could not be installed"
fi
if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip "setuptools>=77"  # the wheel test builds without isolation
# torch first, pinned: an unpinned torch resolves to a multi-GB CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[all,dev]"
# Test-only packages whose metadata pins must be skipped (see the file).
. .ci/extra-test-installs.sh
echo "setup: done (.venv ready)"

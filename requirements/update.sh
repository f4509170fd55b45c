#!/usr/bin/env bash
# Regenerate requirements/lock.txt: every runtime, [test] and [docs] dependency of setup.cfg, pinned with
# hashes, for CPython 3.11 on Linux x86-64 (whatever machine runs this). uv, not pip-compile:
# pip-compile resolves for the interpreter and platform it runs on, uv resolves for a named
# target (--python-version/--python-platform), so the lock is the same wherever it is made.
# Afterwards rerun the suite, the main job's three seeds and the README's figures (README,
# "Updating dependencies"); `python benchmarks/benchmark_bytes.py` must still say "same".
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q "uv==0.13.9"
python3 -m uv pip compile setup.cfg --extra test --extra docs --generate-hashes --upgrade \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --custom-compile-command "bash requirements/update.sh" -o requirements/lock.txt "$@"

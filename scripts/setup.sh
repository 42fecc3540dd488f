#!/usr/bin/env bash
# Creates .venv (if missing) from the python3 on PATH and installs fiqa-bench
# with its test extras into it, at the library versions of constraints.txt
# (those that made results/ and the test fixtures).  Safe to run again: pip
# skips what is there and moves a library that differs to its pinned version.
#
# Quiet by design: pip runs with --quiet, and two known, harmless messages
# are left out: pip's "WARNING: Location '...' is ignored", which a
# machine-wide pip configuration naming absent local index folders prints
# for every package, and setuptools' notice that an editable install was
# made (it tells the developer what -e means).  Errors and every other
# warning still show.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
quiet_pip() {
  PYTHONWARNINGS="ignore:Editable installation:UserWarning" .venv/bin/python -m pip "$@" \
    2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)
}
quiet_pip install --quiet --upgrade pip
quiet_pip install --quiet -c constraints.txt -e ".[test]"
echo "fiqa-bench $(.venv/bin/python -c 'import fiqa_bench; print(fiqa_bench.__version__)') installed in .venv" \
     "($(.venv/bin/python --version)); run: .venv/bin/fiqa-bench --help"

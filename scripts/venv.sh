#!/usr/bin/env bash
# Creates (or refreshes) a Python venv from a pinned requirements file and prints its python:
#   scripts/venv.sh VENV REQUIREMENTS
# The venv is reused while the requirements file is unchanged (its hash is stamped inside).
# pip runs with --no-cache-dir: every run proves it can fetch what it installs.
set -euo pipefail
venv=$1 requirements=$2
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "venv: installing $requirements into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --no-cache-dir --upgrade pip
  "$venv/bin/python" -m pip install --quiet --no-cache-dir -r "$requirements"
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"

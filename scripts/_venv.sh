# Sourced by the other scripts: make sure .venv exists and holds relay with its test
# extras, reinstalling only when pyproject.toml changed. Needs only python3 (>= 3.11).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.relay-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # The bench extras too: every command the README shows works after the set-up.
  .venv/bin/python -m pip install --quiet -e ".[test,bench]"
  rm -f .venv/.relay-installed-*
  touch "$stamp"
fi

# Sourced by ./demo.sh and ./test.sh: a project virtualenv in .venv, (re)installed
# whenever pyproject.toml changes. Needs only Python >= 3.10 with venv and pip.
VENV="${MESOINJECT_VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
STAMP="$VENV/.mesoinject-installed"
# tools/constraints.txt pins every third-party distribution (the SOUP list, docs/soup.md, is made
# from it): a fresh machine gets the versions that were reviewed, not whatever is newest today.
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ tools/constraints.txt -nt "$STAMP" ]; then
  echo "setting up $VENV (pip install -e .[test], pinned by tools/constraints.txt) ..." >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet -e ".[test]" -c tools/constraints.txt >&2
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"

# Sourced by the scripts in this folder: makes .venv with the given extras installed.
# Works on a fresh Debian machine with Python >= 3.11; idempotent and quick when done.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "stalwart needs Python >= 3.11 (found: $("$python" --version 2>&1))" >&2
    exit 1
fi

venv_with() {  # venv_with EXTRAS: create .venv if missing and install .[EXTRAS] into it
    local extras=$1
    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv
        .venv/bin/python -m pip install --quiet --upgrade pip
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
}

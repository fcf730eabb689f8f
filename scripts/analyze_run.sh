#!/usr/bin/env bash
# Everything for one run: a glance at its messages, the report and figures,
# the replay page (replay.html in the run folder) and the steering
# verification (saved beside the report).
#
#   scripts/analyze_run.sh RUN [--storage-root DIR] [verify_steering options...]
#
# RUN is a run id or a run folder. Works from any directory: the repository is
# found from this script's own path; a run id is looked up under --storage-root,
# else ./storage, else the repository's storage/. Python: $PYTHON if set, else
# the repository's .venv/bin/python when present, else python3. Options after
# RUN other than --storage-root go to verify_steering.py (e.g. --skip-behavioural).
# Exit status: 0 when every step succeeded, else the first failing step's
# status (2 = bad input, 1 = a verification check failed).
set -uo pipefail

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    [[ $# -lt 1 ]] && exit 2 || exit 0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
if [[ -n "${PYTHON:-}" ]]; then
    python="$PYTHON"
elif [[ -x "$repo/.venv/bin/python" ]]; then
    python="$repo/.venv/bin/python"
else
    python=python3
fi
if ! "$python" -c "import typer, pandas, pyarrow" >/dev/null 2>&1; then
    echo "error: $python cannot run steersim (missing, or without its packages);" \
        "create the environment with scripts/setup.sh or set PYTHON" >&2
    exit 2
fi

run="$1"
shift

root_args=()
verify_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --storage-root) root_args=(--storage-root "${2:?--storage-root needs a folder}"); shift 2 ;;
        --storage-root=*) root_args=(--storage-root "${1#*=}"); shift ;;
        *) verify_args+=("$1"); shift ;;
    esac
done

export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
run_dir="$("$python" -m orchestrator.analysis.locate "$run" "${root_args[@]}")" || exit $?

status=0
step() {
    echo
    echo "== $1 =="
    shift
    "$@"
    local rc=$?
    if [[ $rc -ne 0 && $status -eq 0 ]]; then status=$rc; fi
}

step "messages (first 20)" "$python" "$repo/scripts/view_results.py" "$run_dir" --limit 20
step "report and figures" "$python" "$repo/scripts/analyze_simulation.py" "$run_dir"
step "replay page" "$python" "$repo/scripts/replay.py" "$run_dir"
step "steering verification" "$python" "$repo/scripts/verify_steering.py" "$run_dir" \
    --save "${verify_args[@]}"
exit $status

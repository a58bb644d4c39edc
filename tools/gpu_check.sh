#!/usr/bin/env bash
# One-shot CUDA check of kerasish: the CUDA tests, then the layer / fit /
# overhead benchmarks on the GPU, summarized in one table (kerasish vs
# hand-written torch, ratio). Sized for one H100 in <= 8 minutes: every
# stage has its own time limit (TEST_S, LAYERS_S, FIT_S, OVERHEAD_S).
#
#   tools/gpu_check.sh                      # on a CUDA machine
#   tools/gpu_check.sh --device cpu --quick # the same pipeline on CPU, short settings
#   DEVICE=cpu QUICK=1 tools/gpu_check.sh   # same, through the environment
#
# GPU_CHECK_TESTS overrides the test files (default: every test file with a
# CUDA-only test, selected with -k "cuda"); BENCH=0 skips the benchmarks.
# Exit status: non-zero when a test
# fails or a stage fails or runs out of time; the table is printed anyway.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, installed or not

DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-0}"
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --device=*) DEVICE="${1#*=}"; shift ;;
        --quick) QUICK=1; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown argument $1" >&2; exit 2 ;;
    esac
done

PY="${PYTHON:-python}"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
STATUS=0
START=$(date +%s)

if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: --device cuda but torch.cuda.is_available() is False (use --device cpu)" >&2
    exit 2
fi
"$PY" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"

if [ "$QUICK" = 1 ]; then
    TEST_S="${TEST_S:-300}"; LAYERS_S="${LAYERS_S:-240}"; FIT_S="${FIT_S:-300}"; OVERHEAD_S="${OVERHEAD_S:-120}"
    LAYERS_ARGS="--small --rounds 2 --only Dense,Conv2D,LSTM"
    FIT_ARGS="--quick"
    OVERHEAD_ARGS="--rounds 3 --no-compile"
else
    # 110 + 90 + 200 + 60 = 460 s at most (bench_fit compiles 4 graphs for its jit rows)
    TEST_S="${TEST_S:-110}"; LAYERS_S="${LAYERS_S:-90}"; FIT_S="${FIT_S:-200}"; OVERHEAD_S="${OVERHEAD_S:-60}"
    LAYERS_ARGS="--rounds 5"
    FIT_ARGS="--rounds 3"
    OVERHEAD_ARGS="--rounds 7"
fi

# 1. tests: every file holding a CUDA-only test (they skip, with a reason, without a GPU)
if [ -n "${GPU_CHECK_TESTS:-}" ]; then
    TESTS="$GPU_CHECK_TESTS"; KEXPR=()
else
    TESTS="$(grep -rlE 'cuda\.is_available\(\)|run_cuda_check' tests --include='test_*.py' | sort | tr '\n' ' ')"
    KEXPR=(-k cuda)  # -k is case-insensitive
fi
echo "== CUDA tests ($DEVICE, limit ${TEST_S}s): $TESTS"
# shellcheck disable=SC2086
timeout "$TEST_S" "$PY" -m pytest -q -rs -p no:cacheprovider "${KEXPR[@]}" $TESTS 2>&1 | tee "$OUT/tests.txt"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then STATUS=1; fi  # 5: nothing selected
echo "tests rc=$rc" > "$OUT/tests.rc"

# 2. benchmarks with --device, each under its own limit
run_bench() {  # name limit args...
    local name="$1" limit="$2"; shift 2
    echo "== $name ($DEVICE, limit ${limit}s): $*"
    timeout "$limit" "$PY" "tools/$name.py" --device "$DEVICE" "$@" 2>&1 | tee "$OUT/$name.txt"
    local brc=${PIPESTATUS[0]}
    echo "$brc" > "$OUT/$name.rc"
    if [ "$brc" -ne 0 ]; then STATUS=1; fi
}
if [ "${BENCH:-1}" != 0 ]; then
    # shellcheck disable=SC2086
    run_bench bench_layers "$LAYERS_S" $LAYERS_ARGS
    # shellcheck disable=SC2086
    run_bench bench_fit "$FIT_S" $FIT_ARGS
    # shellcheck disable=SC2086
    run_bench bench_overhead "$OVERHEAD_S" $OVERHEAD_ARGS
    echo
    "$PY" tools/gpu_summary.py "$OUT" --device "$DEVICE" --seconds "$(( $(date +%s) - START ))" || STATUS=1
else
    echo "gpu_check: benchmarks skipped (BENCH=0); tests: $(grep -E '[0-9]+ (passed|failed|skipped)' "$OUT/tests.txt" | tail -1)"
fi
exit "$STATUS"

#!/usr/bin/env bash
# The GPU checks, for any machine with a CUDA device:
#   bash benchmarks/gpu_check.sh OUT [STEP ...]
# STEP is one of (default: all three, in this order)
#   tests      the CUDA tests (tests/nn/test_cuda.py, tests/nn/test_cuda_graphs.py)
#   speed      speed.py on Cora and PubMed: diffresnet against the official
#              formulation in one process, with CUDA graphs and with TGD_CUDA_GRAPHS=0
#   planetoid  Cora from the official .npz file, 100 splits x 20 inits, diffresnet
#              with --batch-inits, then its summary
# Run from the repository root, in an environment where the package and its test
# dependencies are installed: the script installs nothing. Settings (environment,
# default in brackets):
#   DATA    folder holding Planetoid/ and gnn-benchmark/  [$TGD_SHARED_DATA or ../shared/data]
#   PYTHON  the interpreter                               [python]
#   LIMIT_TESTS LIMIT_SPEED LIMIT_PLANETOID
#           time limit in seconds of each command         [300 300 600]
# Every step runs even if an earlier one fails. Each command's output is in
# OUT/<name>.log and its exit status in OUT/status.tsv (124: it reached its
# limit); the script exits with the first non-zero status, 2 on a usage error.
set -u
if [ $# -lt 1 ]; then
  echo "usage: bash benchmarks/gpu_check.sh OUT [tests] [speed] [planetoid]" >&2
  exit 2
fi
OUT=$1
shift
STEPS=${*:-tests speed planetoid}
DATA=${DATA:-${TGD_SHARED_DATA:-../shared/data}}
PYTHON=${PYTHON:-python}
for s in $STEPS; do
  case "$s" in
    tests|speed|planetoid) ;;
    *) echo "error: unknown step '$s' (use tests, speed, planetoid)" >&2; exit 2 ;;
  esac
done
if [ ! -f benchmarks/speed.py ]; then
  echo "error: run from the repository root" >&2; exit 2
fi
mkdir -p "$OUT" || exit 2
: > "$OUT/status.tsv"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
STATUS=0

run() {  # run NAME LIMIT COMMAND...: output to OUT/NAME.log, status recorded
  local name=$1 limit=$2 rc
  shift 2
  echo "=== $(date +%T) $name (limit ${limit} s): $*"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  tail -n 30 "$OUT/$name.log"
  echo "=== $(date +%T) $name: exit $rc"
  printf '%s\t%s\n' "$name" "$rc" >> "$OUT/status.tsv"
  if [ "$rc" -ne 0 ] && [ "$STATUS" -eq 0 ]; then STATUS=$rc; fi
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PYTHON" -c "import torch, torch_geometric; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'pyg', torch_geometric.__version__, torch.cuda.get_device_name(0))"
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"
if ! "$PYTHON" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  echo "error: no CUDA device visible to $PYTHON" >&2; exit 2
fi

for s in $STEPS; do
  case "$s" in
    tests)
      run tests "${LIMIT_TESTS:-300}" "$PYTHON" -m pytest -q -p no:cacheprovider \
        tests/nn/test_cuda.py tests/nn/test_cuda_graphs.py ;;
    speed)
      run speed_graphs "${LIMIT_SPEED:-300}" env TGD_CUDA_GRAPHS=1 "$PYTHON" \
        benchmarks/speed.py --device cuda --graphs cora pubmed \
        --models diffresnet official --root "$DATA" --repeats 20 --warmup 3 \
        --no-memory --profile --out "$OUT/speed_graphs"
      run speed_eager "${LIMIT_SPEED:-300}" env TGD_CUDA_GRAPHS=0 "$PYTHON" \
        benchmarks/speed.py --device cuda --graphs cora pubmed \
        --models diffresnet official --root "$DATA" --repeats 20 --warmup 3 \
        --no-memory --out "$OUT/speed_eager" ;;
    planetoid)
      run planetoid "${LIMIT_PLANETOID:-600}" "$PYTHON" benchmarks/planetoid.py \
        --dataset cora-npz --model diffresnet --splits 100 --inits 20 \
        --batch-inits --device cuda --root "$DATA" --cache "$OUT/cache" --offline \
        --out "$OUT/planetoid_cora_npz.jsonl"
      if [ -s "$OUT/planetoid_cora_npz.jsonl" ]; then  # Also after a time-out.
        run planetoid_summary 120 "$PYTHON" benchmarks/planetoid.py \
          --summary "$OUT/planetoid_cora_npz.jsonl" \
          --summary-out "$OUT/planetoid_cora_npz_summary"
      fi ;;
  esac
done
echo "=== status"
cat "$OUT/status.tsv"
exit "$STATUS"

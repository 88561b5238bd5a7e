#!/usr/bin/env bash
# The GPU benchmark runs, for any machine with a CUDA device, in two parts:
#   bash benchmarks/h100_run.sh core [OUT]  # CUDA tests, speed.py, Cora 100 x 20 protocol
#   bash benchmarks/h100_run.sh ogb  [OUT]  # synthetic arxiv/products-size full batch
# Run from the repository root. Settings (environment, default in brackets):
#   OUT      output folder, also the second argument      [results/h100]
#   DATA     folder holding Planetoid/<name>/raw           [$TGD_SHARED_DATA or ../shared/data]
#   PYTHON   the interpreter                               [python3]
#   WHEELS   optional folder of wheels (e.g. ogb and its pure-Python needs) installed
#            without network into a temporary folder on PYTHONPATH first
#   LIMIT_TESTS LIMIT_SPEED LIMIT_CORA LIMIT_MAKE LIMIT_ARXIV LIMIT_PRODUCTS
#            time limits in seconds of the steps            [90 150 200 120 150 240]
# A step that fails or reaches its limit is logged and the next one runs; the log and
# all results end up in $OUT/h100_<part>.tar.gz.
set -u
PART=${1:-core}
OUT=${2:-${OUT:-results/h100}}
DATA=${DATA:-${TGD_SHARED_DATA:-../shared/data}}
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-}
case "$PART" in
  core|ogb) ;;
  *) echo "error: unknown part '$PART' (use 'core' or 'ogb')" >&2; exit 2 ;;
esac
if [ ! -f benchmarks/speed.py ]; then
  echo "error: run from the repository root" >&2; exit 2
fi
if [ "$PART" = core ] && [ ! -d "$DATA/Planetoid" ]; then
  echo "error: DATA='$DATA' has no Planetoid/ folder" >&2; exit 2
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT" "$WORK/results"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -n "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" \
    "$WHEELS"/*.whl && export PYTHONPATH=$PYTHONPATH:$WORK/site
fi
log() { echo "=== $(date +%T) $*"; }
{
log "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" -c "import torch, torch_geometric; print('torch', torch.__version__, 'pyg', torch_geometric.__version__, torch.cuda.get_device_name(0))"

if [ "$PART" = core ]; then
  log "CUDA tests"
  timeout "${LIMIT_TESTS:-90}" "$PYTHON" -m pytest -q -p no:cacheprovider \
    tests/nn/test_cuda.py tests/nn/test_diffusion.py 2>&1 | tail -4

  log "speed.py on CUDA (ours vs official formulation vs APPNP vs GCN)"
  timeout "${LIMIT_SPEED:-150}" "$PYTHON" benchmarks/speed.py --device cuda \
    --graphs cora pubmed arxiv-synthetic --root "$DATA" --repeats 20 --warmup 3 --profile \
    --out "$WORK/results/speed_gpu"

  log "Cora, paper protocol, 100 splits x 20 inits, batched inits (stopped after ${LIMIT_CORA:-200} s)"
  timeout "${LIMIT_CORA:-200}" "$PYTHON" benchmarks/planetoid.py --dataset Cora --model diffresnet \
    --protocol random --splits 100 --inits 20 --batch-inits --device cuda --root "$DATA" \
    --cache "$WORK/cache" --offline --out "$WORK/results/cora_100x20_gpu.jsonl" 2>&1 \
    | grep -v "it/s\]$" | tail -120
  "$PYTHON" benchmarks/planetoid.py --summary "$WORK/results/cora_100x20_gpu.jsonl" \
    --summary-out "$WORK/results/cora_100x20_gpu_summary"
fi

if [ "$PART" = ogb ]; then
  log "arxiv-size synthetic data in OGB's raw layout"
  timeout "${LIMIT_MAKE:-120}" "$PYTHON" benchmarks/make_synthetic_ogb.py --like ogbn-arxiv \
    --scale 1.0 --root "$WORK/ogb_synth" --overwrite
  log "arxiv-size full batch: diffresnet vs gcn vs mlp"
  timeout "${LIMIT_ARXIV:-150}" "$PYTHON" benchmarks/ogbn.py --dataset ogbn-arxiv \
    --root "$WORK/ogb_synth" --model diffresnet gcn mlp --runs 2 --epochs 200 --device cuda \
    --log-every 50 --out "$WORK/results/ogb_arxiv_synthetic_gpu.jsonl" 2>&1 | tail -30
  log "products-size full batch epochs (in-memory synthetic graph)"
  timeout "${LIMIT_PRODUCTS:-240}" "$PYTHON" benchmarks/ogbn.py --dataset ogbn-products \
    --synthetic-in-memory 1.0 --mode full --model diffresnet gcn --runs 1 --epochs 2 \
    --eval-every 2 --device cuda --out "$WORK/results/ogb_products_synthetic_gpu.jsonl" \
    2>&1 | tail -30
fi
log "done"
} 2>&1 | tee "$WORK/results/h100_${PART}.log"
tar -czf "$OUT/h100_${PART}.tar.gz" -C "$WORK/results" .
echo "wrote $OUT/h100_${PART}.tar.gz"

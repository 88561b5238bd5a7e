#!/usr/bin/env bash
# The prepared GPU run behind the README's H100 figures, in two parts that fit
# a 15-minute device budget:
#   bash benchmarks/h100_run.sh core   # CUDA tests, speed.py, Cora 100 x 20 protocol
#   bash benchmarks/h100_run.sh ogb    # synthetic arxiv/products-size full batch
# DATA holds Planetoid/<name>/raw (a copy of ../shared/data/Planetoid), WHEELS
# optional wheels to install first (ogb and its pure-Python needs), OUT the
# output folder. Every step has its own time limit and the next step runs even
# if one fails; all logs and results end up in $OUT/h100_<part>.tar.gz.
set -u
PART=${1:-core}
DATA=${DATA:-.gpu_data}
WHEELS=${WHEELS:-.whl}
OUT=${OUT:-results/h100}
WORK=$(mktemp -d)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$WHEELS"/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
log() { echo "=== $(date +%T) $*"; }
{
log "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torch_geometric; print('torch', torch.__version__, 'pyg', torch_geometric.__version__, torch.cuda.get_device_name(0))"

if [ "$PART" = core ]; then
  log "CUDA tests"
  timeout 90 python3 -m pytest -q -p no:cacheprovider tests/nn/test_cuda.py tests/nn/test_diffusion.py 2>&1 | tail -4

  log "speed.py on CUDA (ours vs official formulation vs APPNP vs GCN)"
  timeout 150 python3 benchmarks/speed.py --device cuda --graphs cora pubmed arxiv-synthetic \
    --root "$DATA" --repeats 20 --warmup 3 --profile --out "$WORK/speed_h100"

  log "Cora, paper protocol, 100 splits x 20 inits, batched inits (stopped at 200 s)"
  timeout 200 python3 benchmarks/planetoid.py --dataset Cora --model diffresnet --protocol random \
    --splits 100 --inits 20 --batch-inits --device cuda --root "$DATA" --cache "$WORK/cache" \
    --offline --out "$WORK/cora_100x20_h100.jsonl" 2>&1 | grep -v "it/s\]$" | tail -120
  python3 benchmarks/planetoid.py --summary "$WORK/cora_100x20_h100.jsonl" \
    --summary-out "$WORK/cora_100x20_h100_summary"
fi

if [ "$PART" = ogb ]; then
  log "arxiv-size synthetic data in OGB's raw layout"
  timeout 120 python3 benchmarks/make_synthetic_ogb.py --like ogbn-arxiv --scale 1.0 \
    --root "$WORK/ogb_synth" --overwrite
  log "arxiv-size full batch: diffresnet vs gcn vs mlp"
  timeout 150 python3 benchmarks/ogbn.py --dataset ogbn-arxiv --root "$WORK/ogb_synth" \
    --model diffresnet gcn mlp --runs 2 --epochs 200 --device cuda --log-every 50 \
    --out "$WORK/ogb_arxiv_synthetic_h100.jsonl" 2>&1 | tail -30
  log "products-size full batch epochs (in-memory synthetic graph)"
  timeout 240 python3 benchmarks/ogbn.py --dataset ogbn-products --synthetic-in-memory 1.0 \
    --mode full --model diffresnet gcn --runs 1 --epochs 2 --eval-every 2 --device cuda \
    --out "$WORK/ogb_products_synthetic_h100.jsonl" 2>&1 | tail -30
fi
log "done"
} 2>&1 | tee "$WORK/h100_${PART}.log"
tar -czf "$OUT/h100_${PART}.tar.gz" -C "$WORK" --exclude=cache --exclude=ogb_synth .

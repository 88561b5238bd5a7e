#!/usr/bin/env bash
# Explicit vs implicit diffusion steps, selected by validation accuracy only and
# confirmed on splits the selection never saw, paired against APPNP and GCN:
#   bash benchmarks/implicit_study.sh select  [DATASET ...]  # default: Cora CiteSeer PubMed
#   bash benchmarks/implicit_study.sh confirm [DATASET ...]
#   bash benchmarks/implicit_study.sh summary [DATASET ...]
# Run from the repository root; rerunning a stage resumes it from its files. With
# SHARD, run each stage in every shard before the next stage starts: the confirmation
# reads the selection runs of all shards.
# Settings (environment, default in brackets):
#   OUT      output folder                                 [results/implicit_study]
#   DATA     folder holding Planetoid/<name>/raw, ...      [$TGD_SHARED_DATA or ../shared/data]
#   PYTHON   the interpreter                               [python3]
#   THREADS  threads per run                               [1]
#   DEVICE   the device of every run                       [cpu]
#   SHARD    I/N: this process's share of the splits, for N processes side by side [0/1]
#
# Per dataset, one stage each:
#   1. select: init 0 of splits 0-9 (random protocol; Geom-GCN sets: splits 0-4) for
#      the paper's model (no input projection; not on the Geom-GCN sets, which the
#      paper does not run and where it trains a square layer as wide as the
#      features), explicit with a 64-wide input projection,
#      implicit with K in {1,2,4} x gamma in {1,4,9,19}, and a learnable gamma
#      (explicit from the dataset's gamma; implicit from K 2, gamma 4), every one with
#      the dataset's dropout;
#   2. confirm: the setting with the best mean validation accuracy in (1), with
#      APPNP and GCN, on init 0 of splits 20-39 (Geom-GCN sets: splits 5-9);
#   3. summary: of both, $OUT/<dataset>_select_summary.* (every setting, its
#      validation accuracy) and $OUT/<dataset>_fresh_summary.* (paired t-test and
#      Wilcoxon against APPNP and GCN).
set -euo pipefail
OUT=${OUT:-results/implicit_study}
DATA=${DATA:-${TGD_SHARED_DATA:-../shared/data}}
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-1}
DEVICE=${DEVICE:-cpu}
SHARD=${SHARD:-0/1}
STAGE=${1:-}
case "$STAGE" in
  select|confirm|summary) shift ;;
  *) echo "error: the first argument is the stage: select, confirm or summary" >&2
     exit 2 ;;
esac
if [ ! -f benchmarks/planetoid.py ]; then
  echo "error: run from the repository root" >&2; exit 2
fi
if [ $# -eq 0 ]; then
  set -- Cora CiteSeer PubMed
fi
mkdir -p "$OUT"
suffix=""
[ "$SHARD" != 0/1 ] && suffix="_${SHARD%/*}"
run() { "$PYTHON" benchmarks/planetoid.py --inits 1 --threads "$THREADS" --device "$DEVICE" \
          --shard "$SHARD" \
          --root "$DATA" --offline "$@"; }
files() { ls "$OUT/$1"_"$2"*.jsonl; }  # The files of a stage, of all shards.

for dataset in "$@"; do
  case "${dataset,,}" in
    cora|citeseer|pubmed) protocol=random; select=(--splits 10)
                          fresh=(--splits 40 --first-split 20); paper=1 ;;
    *) protocol=geom-gcn; select=(--splits 5); fresh=(--splits 10 --first-split 5)
       paper=0 ;;
  esac
  case "$STAGE" in
    select)
      common=(--dataset "$dataset" --protocol "$protocol" --model diffresnet
              "${select[@]}" --out "$OUT/${dataset}_select$suffix.jsonl")
      [ "$paper" = 1 ] && run "${common[@]}" --hidden none
      run "${common[@]}" --hidden 64
      run "${common[@]}" --hidden 64 --grid scheme=implicit num_steps=1,2,4 \
        step_size=1,4,9,19
      run "${common[@]}" --hidden 64 --learnable-step true
      run "${common[@]}" --hidden 64 --scheme implicit --num-steps 2 --step-size 4 \
        --learnable-step true ;;
    confirm)
      mapfile -t sel < <(files "$dataset" select)
      run --dataset "$dataset" --protocol "$protocol" --model diffresnet appnp gcn \
        --selected-from "${sel[@]}" "${fresh[@]}" \
        --out "$OUT/${dataset}_fresh$suffix.jsonl" ;;
    summary)
      mapfile -t sel < <(files "$dataset" select)
      mapfile -t fr < <(files "$dataset" fresh)
      "$PYTHON" benchmarks/planetoid.py --summary "${sel[@]}" \
        --summary-out "$OUT/${dataset}_select_summary"
      "$PYTHON" benchmarks/planetoid.py --summary "${fr[@]}" \
        --summary-out "$OUT/${dataset}_fresh_summary" ;;
  esac
done

#!/usr/bin/env bash
# Drop-in for the OpenJudge SFT cookbook's run_sft_rm.sh: the same environment variables and defaults, on TRL +
# Accelerate + DeepSpeed ZeRO-3 instead of verl. It writes a recipe with `judge-sft recipe` and trains it with
# `judge-sft train`; arguments are passed on as recipe overrides (--key value).
#
#   MODEL_PATH=Qwen/Qwen3-14B TRAIN_FILE=data/helpsteer2/train.parquet VAL_FILE=data/helpsteer2/val.parquet \
#       bash recipes/run_sft_rm.sh [--learning_rate 2e-5 ...]
#
# CPU_OFFLOAD is the cookbook's true/false, or none / optimizer / all (true = all, false = none). With the default false,
# Qwen3-32B fits 8 x 80 GB through the template's `master_weights: bf16_kahan` (see docs/planning.md#memory).
# Beyond the cookbook's variables: MAX_LENGTH, OUTPUT_DIR, RECIPE (where the recipe is written) and ACCELERATE_CONFIG
# (a bundled config's name or a path; default zero3, zero3_offload_optimizer for CPU_OFFLOAD=optimizer, zero3_offload
# for all or true, zero3_multinode when NNODES > 1).
# Several nodes: run this on each with NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT (like the cookbook, NNODES and
# NODE_RANK default to WORLD_SIZE and RANK), or use recipes/launch.slurm under Slurm.
set -euo pipefail

N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-8}
NNODES=${NNODES:-${WORLD_SIZE:-1}}
NODE_RANK=${NODE_RANK:-${RANK:-0}}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}

MODEL_PATH=${MODEL_PATH:-Qwen/Qwen3-32B}
TRAIN_FILE=${TRAIN_FILE:-data/helpsteer2/train.parquet}
VAL_FILE=${VAL_FILE-data/helpsteer2/val.parquet}  # VAL_FILE= (empty): no validation
TOTAL_BATCH_SIZE=${TOTAL_BATCH_SIZE:-${TRAIN_BATCH_SIZE:-96}}  # the cookbook's script calls it TRAIN_BATCH_SIZE
MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-12}
SP_SIZE=${SP_SIZE:-$((N_GPUS_PER_NODE < 8 ? N_GPUS_PER_NODE : 8))}  # as the cookbook: 8, or every GPU of a smaller node
TOTAL_EPOCHS=${TOTAL_EPOCHS:-1}
MAX_LENGTH=${MAX_LENGTH:-4096}
CPU_OFFLOAD=${CPU_OFFLOAD:-false}
OUTPUT_DIR=${OUTPUT_DIR:-outputs/$(basename "$MODEL_PATH" | tr '[:upper:]' '[:lower:]')-judge}
RECIPE=${RECIPE:-$OUTPUT_DIR/run_sft_rm.yaml}

case $CPU_OFFLOAD in
    false | none) CPU_OFFLOAD=none ;;
    true | all) CPU_OFFLOAD=all ;;
    optimizer) ;;
    *)
        echo "run_sft_rm.sh: error: CPU_OFFLOAD is '$CPU_OFFLOAD'; expected true, false, none, optimizer or all" >&2
        exit 1
        ;;
esac
if [[ -n ${ACCELERATE_CONFIG:-} ]]; then
    :
elif ((NNODES > 1)) && [[ $CPU_OFFLOAD != none ]]; then
    echo "run_sft_rm.sh: error: no multi-node offload config; set ACCELERATE_CONFIG" >&2
    exit 1
elif ((NNODES > 1)); then
    ACCELERATE_CONFIG=zero3_multinode
elif [[ $CPU_OFFLOAD == optimizer ]]; then
    ACCELERATE_CONFIG=zero3_offload_optimizer
elif [[ $CPU_OFFLOAD == all ]]; then
    ACCELERATE_CONFIG=zero3_offload
else
    ACCELERATE_CONFIG=zero3
fi

recipe_flags=(
    --model-path "$MODEL_PATH" --train-file "$TRAIN_FILE"
    --total-batch-size "$TOTAL_BATCH_SIZE" --micro-batch-size "$MICRO_BATCH_SIZE" --sp-size "$SP_SIZE"
    --epochs "$TOTAL_EPOCHS" --max-length "$MAX_LENGTH" --output-dir "$OUTPUT_DIR"
    --num-gpus $((NNODES * N_GPUS_PER_NODE)) -o "$RECIPE" --force  # a relaunch (to resume) rewrites it
)
[[ -n $VAL_FILE ]] && recipe_flags+=(--val-file "$VAL_FILE")
recipe_flags+=(--cpu-offload "$CPU_OFFLOAD")  # always said, so that the recipe and the accelerate config agree
judge-sft recipe "${recipe_flags[@]}"

launch_flags=(--accelerate-config "$ACCELERATE_CONFIG" --num-processes $((NNODES * N_GPUS_PER_NODE))
              --main-process-port "$MASTER_PORT")
if ((NNODES > 1)); then
    launch_flags+=(--num-machines "$NNODES" --machine-rank "$NODE_RANK" --main-process-ip "$MASTER_ADDR")
fi
set -x
judge-sft train "$RECIPE" "${launch_flags[@]}" "$@"

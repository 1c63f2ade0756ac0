"""`judge-sft recipe`: the cookbook's documented run parameters -> a commented YAML recipe that run.py accepts unchanged.

    judge-sft recipe --model-path Qwen/Qwen3-14B --train-file data/train.parquet --val-file data/val.parquet \\
        --total-batch-size 96 --micro-batch-size 12 --sp-size 8 --epochs 1 --num-gpus 8 -o recipe.yaml
"""

from pathlib import Path

from judge_sft.commands.argtypes import cpu_offload, positive_int, recipe_value
from judge_sft.errors import JudgeSFTError
from judge_sft.files import write_atomically
from judge_sft.train.launch import MASTER_WEIGHTS
from judge_sft.train.recipe_template import TEMPLATE, build_recipe


def add_arguments(parser):
    parser.allow_abbrev = False  # a misspelt flag is an error, never a silent prefix match
    parser.add_argument("--model-path", required=True, help="base model, Hub id or directory (MODEL_PATH)")
    parser.add_argument("--train-file", required=True, help="messages Parquet to train on (TRAIN_FILE)")
    parser.add_argument("--val-file", help="messages Parquet for val/loss (VAL_FILE); without it, no evaluation")
    parser.add_argument(
        "--total-batch-size",
        type=recipe_value("total_batch_size"),
        default=96,
        help="global sequences per optimizer step (TOTAL_BATCH_SIZE)",
    )
    parser.add_argument(
        "--micro-batch-size",
        type=recipe_value("per_device_train_batch_size"),
        default=12,
        help="sequences per GPU per forward pass (MICRO_BATCH_SIZE)",
    )
    parser.add_argument(
        "--sp-size", type=recipe_value("sp_size"), default=8, help="Ulysses sequence-parallel size (SP_SIZE)"
    )
    parser.add_argument(
        "--epochs", type=recipe_value("num_train_epochs", float), default=1, help="training epochs (TOTAL_EPOCHS)"
    )
    parser.add_argument(
        "--max-length",
        type=recipe_value("max_length"),
        default=4096,
        help="tokens per row; longer rows are cut on the right",
    )
    parser.add_argument(
        "--cpu-offload",
        nargs="?",
        const="all",
        type=cpu_offload,
        help="none, optimizer or all (alone: all); each launches with its accelerate config (default: the template's)",
    )
    parser.add_argument(
        "--no-cpu-offload",
        dest="cpu_offload",
        action="store_const",
        const="none",
        help="the same as --cpu-offload none",
    )
    parser.add_argument(
        "--master-weights",
        choices=MASTER_WEIGHTS,
        help="fp32, or bf16_kahan (no offload only; default: the template's, fp32 with --cpu-offload)",
    )
    parser.add_argument("--output-dir", help="checkpoints and final model (default: outputs/<model name>-judge)")
    parser.add_argument("--num-gpus", type=positive_int, help="GPUs in the launch: check that the batch sizes divide")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="recipe to start from (default: %(default)s)")
    parser.add_argument("-o", "--output", required=True, help="where to write the recipe YAML")
    parser.add_argument("--force", action="store_true", help="overwrite --output when it exists")


def main(args):
    if Path(args.output).exists() and not args.force:
        raise JudgeSFTError(f"{args.output} exists; pass --force to overwrite it, or name another -o")
    text = build_recipe(args, args.template)
    write_atomically(args.output, text)
    print(f"recipe written to {args.output}")
    return 0

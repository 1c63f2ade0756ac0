"""`judge-sft plot OUTPUT_DIR [-o PNG]`: train and val loss against step, lr on a second axis, as the cookbook's curve."""

from pathlib import Path

from judge_sft.train.loss_curve import PLOT_NAME, plot_losses


def add_arguments(parser):
    parser.add_argument("output_dir", type=Path, help="a run's output_dir (or one checkpoint-* folder)")
    parser.add_argument("-o", "--output", type=Path, help=f"PNG to write (default: OUTPUT_DIR/{PLOT_NAME})")


def main(args):
    print(f"loss curve written to {plot_losses(args.output_dir, args.output)}")
    return 0

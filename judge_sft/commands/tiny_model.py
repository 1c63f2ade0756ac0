"""`judge-sft tiny-model DIR`: a random-weight Qwen3-architecture model with the real Qwen3 tokenizer, built offline."""

from judge_sft.commands.argtypes import positive_int
from judge_sft.tiny_model import build_tiny_model


def add_arguments(parser):
    parser.add_argument("output_dir", help="where to write the model and tokenizer")
    parser.add_argument("--hidden-size", type=positive_int, default=64, help="hidden size (default: %(default)s)")
    parser.add_argument("--num-layers", type=positive_int, default=2, help="decoder layers (default: %(default)s)")
    parser.add_argument("--num-heads", type=positive_int, default=4, help="attention heads (default: %(default)s)")
    parser.add_argument(
        "--num-kv-heads",
        type=positive_int,
        default=2,
        help="key/value heads, dividing --num-heads (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: %(default)s)")


def main(args):
    build_tiny_model(args.output_dir, args.hidden_size, args.num_layers, args.num_heads, args.num_kv_heads, args.seed)
    print(f"tiny Qwen3 model written to {args.output_dir}")
    return 0

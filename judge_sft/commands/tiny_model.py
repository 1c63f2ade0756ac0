"""`judge-sft tiny-model DIR`: a random-weight Qwen3-architecture model with the real Qwen3 tokenizer, built offline."""

from judge_sft.tiny_model import build_tiny_model


def add_arguments(parser):
    parser.add_argument("output_dir", help="where to write the model and tokenizer")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--num-kv-heads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)


def main(args):
    build_tiny_model(args.output_dir, args.hidden_size, args.num_layers, args.num_heads, args.num_kv_heads, args.seed)
    print(f"tiny Qwen3 model written to {args.output_dir}")
    return 0

"""`judge-sft merge OUTPUT_DIR [--output DIR]`: a LoRA run's adapters merged into its base model, a plain model to serve
(docs/inference.md#lora-adapters-served-or-merged)."""

from judge_sft.hub.merge import merge_adapters


def add_arguments(parser):
    parser.add_argument("adapter_dir", help="a LoRA run's output directory, or one of its checkpoint-N folders")
    parser.add_argument(
        "--output", help="where to write the merged model (a new directory); default: ADAPTER_DIR-merged"
    )


def main(args):
    output, base_model = merge_adapters(args.adapter_dir, args.output)
    print(f"{output}: {args.adapter_dir}'s adapters merged into {base_model}; serve it as it is (docs/inference.md)")
    return 0

"""`judge-sft evaluate MODEL [MODEL ...] --data FILE.parquet [--output DIR]`: how well each judge's verdicts agree
with the human labels of a judge Parquet, side by side (docs/evaluation.md). Judges: local models (an output or
checkpoint directory, a Hub id), an OpenAI-compatible server (`--base-url URL --model NAME`), completions made
elsewhere (`--predictions FILE.jsonl`); the first named is the one the others are compared with."""

from pathlib import Path

from judge_sft.commands.argtypes import positive_int, positive_number
from judge_sft.errors import JudgeSFTError

DEFAULT_OUTPUT = Path("judge_eval")


def add_arguments(parser):
    parser.add_argument("models", nargs="*", metavar="MODEL", help="an output or checkpoint directory, or a Hub id")
    parser.add_argument("--data", type=Path, required=True, help="a judge Parquet (prepare-data --task ...)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}/")
    parser.add_argument("--base-url", help="an OpenAI-compatible server, e.g. http://localhost:8000/v1")
    parser.add_argument("--model", dest="served_model", metavar="NAME", help="the model name the server serves")
    parser.add_argument("--concurrency", type=positive_int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--timeout", type=positive_number, default=300.0, help="seconds per request (default 300)")
    parser.add_argument("--retries", type=positive_int, default=3, help="per request, on 5xx / connection errors")
    parser.add_argument(
        "--predictions", type=Path, action="append", default=[], metavar="FILE.jsonl", help="{row, completion} lines"
    )
    parser.add_argument("--max-new-tokens", type=positive_int, default=1024, help="per completion (default 1024)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="rows per local generate call (default 8)")
    parser.add_argument("--limit", type=positive_int, help="evaluate the first N rows only")
    parser.add_argument("--resamples", type=positive_int, default=1000, help="bootstrap resamples (default 1000)")


def endpoint_generator(args):
    from judge_sft.evaluation.endpoint import EndpointGenerator  # httpx only when a server is asked for

    return EndpointGenerator(
        args.base_url, args.served_model, args.concurrency, args.timeout, args.retries, args.max_new_tokens
    )


def generators(args, data):
    """The judges in the order named: local models, the server, then the predictions files."""
    from judge_sft.evaluation.generation import PredictionsFile

    sources = [PredictionsFile(path, len(data), data.total_rows) for path in args.predictions]
    if args.base_url:
        sources.insert(0, endpoint_generator(args))
    if args.models:
        from judge_sft.evaluation.local import LocalGenerator

        sources[:0] = [LocalGenerator(model, args.batch_size, args.max_new_tokens) for model in args.models]
    return sources


def main(args):
    if not (args.models or args.base_url or args.predictions):
        raise JudgeSFTError("nothing to evaluate: name a MODEL, --base-url URL --model NAME, or --predictions FILE")
    if bool(args.base_url) != bool(args.served_model):
        raise JudgeSFTError("--base-url and --model go together: the server, and the model name it serves")
    from judge_sft.evaluation.evaluate import evaluate
    from judge_sft.evaluation.judge_data import read_judge_rows
    from judge_sft.evaluation.report import metrics_table

    data = read_judge_rows(args.data, args.limit)
    document = evaluate(data, generators(args, data), args.output, args.resamples)
    print(metrics_table(document))
    print(f"\npredictions, metrics.json and evaluation.png in {args.output}/")
    return 0

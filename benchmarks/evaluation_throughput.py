"""Judge evaluation throughput on the tiny Qwen3 (CPU): the endpoint backend at concurrency 1 against 8, talking to
`transformers serve` with and without `--continuous-batching`, and the local backend batched against one row at a
time. Every configuration completes the same prompts with the same number of new tokens (the tiny model never emits
its end-of-turn token within them), so rows/s compare like with like.

    .venv/bin/python benchmarks/evaluation_throughput.py --rows 8 --new-tokens 32 --repeats 3
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from conftest import conversation  # noqa: E402
from serve_server import SMALL_CB_CACHE, TransformersServe  # noqa: E402

from judge_sft.evaluation.endpoint import EndpointGenerator  # noqa: E402
from judge_sft.tiny_model import build_tiny_model  # noqa: E402


def rows_per_second(generator, prompts, repeats):
    """The median over `repeats` runs of len(prompts) / seconds, after one warm-up run."""
    list(generator.complete(enumerate(prompts)))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = list(generator.complete(enumerate(prompts)))
        rates.append(len(done) / (time.perf_counter() - start))
    return statistics.median(rates)


def endpoint(model_dir, prompts, args, log_dir):
    results = {}
    for server_name, options in (
        ("transformers serve", []),
        ("transformers serve --continuous-batching", SMALL_CB_CACHE),
    ):
        with TransformersServe(model_dir, *options, log_dir=log_dir) as server:
            for concurrency in (1, 8):
                generator = EndpointGenerator(
                    server.base_url, str(model_dir), concurrency=concurrency, max_new_tokens=args.new_tokens
                )
                results[(server_name, concurrency)] = rate = rows_per_second(generator, prompts, args.repeats)
                print(f"{server_name}, concurrency {concurrency}: {rate:.2f} rows/s", flush=True)
        print(f"  ratio 8 / 1: {results[(server_name, 8)] / results[(server_name, 1)]:.2f}x", flush=True)
    return results


def local(model_dir, prompts, args):
    try:
        from judge_sft.evaluation.local import LocalGenerator
    except ModuleNotFoundError:
        print("local: judge_sft/evaluation/local.py is not on this branch")
        return
    rates = {}
    for batch_size in (1, len(prompts)):
        generator = LocalGenerator(str(model_dir), batch_size=batch_size, max_new_tokens=args.new_tokens)
        rates[batch_size] = rows_per_second(generator, prompts, args.repeats)
        print(f"local, batch size {batch_size}: {rates[batch_size]:.2f} rows/s", flush=True)
    print(f"  ratio batched / one at a time: {rates[len(prompts)] / rates[1]:.2f}x", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", choices=("endpoint", "local"), action="append", default=[])
    args = parser.parse_args()
    prompts = [conversation(index, 1)[:-1] for index in range(args.rows)]
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(build_tiny_model(Path(scratch) / "tiny"))
        if "endpoint" not in args.skip:
            endpoint(model_dir, prompts, args, scratch)
        if "local" not in args.skip:
            local(model_dir, prompts, args)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()

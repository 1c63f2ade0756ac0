"""Judge evaluation throughput on the tiny Qwen3 (CPU): the endpoint backend at concurrency 1 against 8, talking to
`transformers serve` with and without `--continuous-batching`, and the local backend batched against one row at a
time. Every configuration completes the same prompts with the same number of new tokens (the tiny model never emits
its end-of-turn token within them), so rows/s compare like with like. The configurations take turns within each
repeat (both servers up throughout), so a machine whose load drifts slows them alike; the median of the repeats.

    .venv/bin/python benchmarks/evaluation_throughput.py --rows 8 --new-tokens 32 --repeats 5
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from conftest import conversation  # noqa: E402
from serve_server import SMALL_CB_CACHE, TransformersServe  # noqa: E402

from judge_sft.evaluation.endpoint import EndpointGenerator  # noqa: E402
from judge_sft.tiny_model import build_tiny_model  # noqa: E402

SERVERS = {"transformers serve": [], "transformers serve --continuous-batching": SMALL_CB_CACHE}


def endpoint_run(server, model_dir, prompts, concurrency, new_tokens):
    generator = EndpointGenerator(server.base_url, str(model_dir), concurrency=concurrency, max_new_tokens=new_tokens)
    return lambda: list(generator.complete(enumerate(prompts)))


def local_run(model_dir, prompts, batch_size, new_tokens):
    """LocalGenerator's own rendering and batched `generate`, the model loaded once (complete() loads it per call)."""
    from judge_sft.evaluation.local import LocalGenerator

    generator = LocalGenerator(str(model_dir), batch_size=batch_size, max_new_tokens=new_tokens)
    model, ids = generator.load_model(), [generator.prompt_ids(prompt) for prompt in prompts]
    return lambda: [text for start in range(0, len(ids), batch_size) for text in generator.generate(model, ids[start : start + batch_size])]  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    prompts = [conversation(index, 1)[:-1] for index in range(args.rows)]
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as servers:
        model_dir = Path(build_tiny_model(Path(scratch) / "tiny"))
        runs = {}
        for name, options in SERVERS.items():
            server = servers.enter_context(TransformersServe(model_dir, *options, log_dir=scratch))
            for concurrency in (1, args.rows):
                runs[f"{name}, concurrency {concurrency}"] = endpoint_run(
                    server, model_dir, prompts, concurrency, args.new_tokens
                )
        for batch_size in (1, args.rows):
            runs[f"local, batch size {batch_size}"] = local_run(model_dir, prompts, batch_size, args.new_tokens)
        print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        for run in runs.values():  # warm-up: the first request of a server, the first generate of a model
            run()
        rates = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                rates[name].append(args.rows / (time.perf_counter() - start))
        print(f"load average at the end: {os.getloadavg()[0]:.1f}", flush=True)
    median = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        print(f"{name}: {median[name]:.2f} rows/s (runs: {', '.join(f'{value:.2f}' for value in values)})")
    for name in SERVERS:
        ratio = median[f"{name}, concurrency {args.rows}"] / median[f"{name}, concurrency 1"]
        print(f"{name}: concurrency {args.rows} / 1 = {ratio:.2f}x")
    ratio = median[f"local, batch size {args.rows}"] / median["local, batch size 1"]
    print(f"local: batch size {args.rows} / 1 = {ratio:.2f}x")


if __name__ == "__main__":
    main()

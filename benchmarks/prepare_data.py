"""Benchmark `judge-sft prepare-data` on a HelpSteer2-size input against a plain pyarrow read + filter + write.

    .venv/bin/python benchmarks/prepare_data.py [--repeats 3] [--keep DIR]

Generates synthetic train.jsonl.gz / validation.jsonl.gz shaped like the published HelpSteer2 (20,324 + 1,038 rows,
two responses per prompt, 29% multi-turn prompts, prompts of hundreds to thousands of characters, ~12 MB gzipped),
then runs each side in a fresh subprocess and prints the median wall and CPU time, the peak RSS and the ratios.
Targets: prepare-data within 2x the baseline's wall time and under 1 GB peak memory.
"""

import argparse
import gzip
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN_ROWS, VAL_ROWS = 20_324, 1_038
MULTI_TURN_SHARE = 0.29
ASSISTANT, USER = "\n<extra_id_1>Assistant\n", "\n<extra_id_1>User\n"
VOCABULARY_SIZE = 20_000
ZIPF_CUMULATIVE_WEIGHTS = list(itertools.accumulate(1 / rank for rank in range(1, VOCABULARY_SIZE + 1)))  # as in prose
TARGET_RATIO, TARGET_PEAK_BYTES = 2.0, 1 << 30

# The baseline: what prepare-data does at the least, with nothing but pyarrow.
BASELINE = """
import sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.json as pj, pyarrow.parquet as pq
for source, target in zip(sys.argv[1::2], sys.argv[2::2]):
    table = pj.read_json(pa.input_stream(source, compression="gzip"))
    pq.write_table(table.filter(pc.field("correctness") >= 4), target)
"""


def synthetic_text(rng: random.Random, vocabulary: list[str], characters: int) -> str:
    words = rng.choices(vocabulary, cum_weights=ZIPF_CUMULATIVE_WEIGHTS, k=characters // 6 + 1)
    for index in range(0, len(words), 12):  # sentence and paragraph breaks
        words[index] += rng.choice([".", ",", "?", ":\n", ".\n\n"])
    return " ".join(words)


def text_length(rng: random.Random, median: int) -> int:
    return max(20, min(int(rng.lognormvariate(0, 0.9) * median), 20_000))


def synthetic_prompt(rng: random.Random, vocabulary: list[str]) -> str:
    turns = [synthetic_text(rng, vocabulary, text_length(rng, 250))]
    if rng.random() < MULTI_TURN_SHARE:
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            turns += [
                ASSISTANT,
                synthetic_text(rng, vocabulary, text_length(rng, 400)),
                USER,
                synthetic_text(rng, vocabulary, text_length(rng, 200)),
            ]
    return "".join(turns)


def write_input(path: Path, rows: int, rng: random.Random, vocabulary: list[str]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as file:
        for _ in range(rows // 2):
            prompt = synthetic_prompt(rng, vocabulary)
            for _ in range(2):  # two rated responses per prompt, as in HelpSteer2
                scores = {
                    name: rng.randint(0, 4)
                    for name in ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
                }
                scores["correctness"] = rng.choice([4, 4, 4, 3, 2, 1])
                response = synthetic_text(rng, vocabulary, text_length(rng, 560))
                file.write(json.dumps({"prompt": prompt, "response": response, **scores}) + "\n")


def generate(directory: Path) -> list[Path]:
    rng = random.Random(0)
    letters = "etaoinshrdlcumwfgypbvkxjqz"
    vocabulary = [
        "".join(rng.choices(letters, weights=range(26, 0, -1), k=rng.randint(2, 9))) for _ in range(VOCABULARY_SIZE)
    ]
    paths = [directory / "train.jsonl.gz", directory / "validation.jsonl.gz"]
    for path, rows in zip(paths, (TRAIN_ROWS, VAL_ROWS)):
        write_input(path, rows, rng, vocabulary)
    return paths


def measure(command: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS bytes) of one fresh subprocess."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        sys.exit(f"failed ({process.returncode}): {' '.join(command)}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024  # Linux reports kilobytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="generate the input here and keep it (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        inputs = generate(work)
        size = sum(path.stat().st_size for path in inputs)
        print(
            f"input: {TRAIN_ROWS + VAL_ROWS:,} rows, {size / 1e6:.1f} MB gzipped ({', '.join(p.name for p in inputs)})"
        )
        commands = {
            "baseline (pyarrow read+filter+write)": [sys.executable, "-c", BASELINE]
            + [str(part) for path in inputs for part in (path, work / f"baseline_{path.name}.parquet")],
            "judge-sft prepare-data": [
                sys.executable,
                "-m",
                "judge_sft.cli",
                "prepare-data",
                "--overwrite",
                "--output-dir",
                str(work / "prepared"),
            ]
            + [part for path in inputs for part in ("--input", str(path))],
        }
        results = {name: [] for name in commands}
        for _ in range(args.repeats):  # interleaved, so that drift in machine load hits both sides alike
            for name, command in commands.items():
                results[name].append(measure(command))
    report(results)
    return 0


def report(results: dict) -> None:
    # Median wall and CPU time (CPU time is steadier on a shared machine), largest peak RSS over the repeats.
    rows = {
        name: (
            statistics.median(run[0] for run in runs),
            statistics.median(run[1] for run in runs),
            max(run[2] for run in runs),
        )
        for name, runs in results.items()
    }
    (base_wall, base_cpu, base_peak), (wall, cpu, peak) = rows.values()
    width = max(map(len, rows))
    print(f"{'':<{width}}  {'wall':>7}  {'cpu':>7}  {'peak RSS':>8}")
    for name, (name_wall, name_cpu, name_peak) in rows.items():
        print(f"{name:<{width}}  {name_wall:>6.2f}s  {name_cpu:>6.2f}s  {name_peak / 2**20:>5.0f} MB")
    print(f"{'ratio':<{width}}  {wall / base_wall:>6.2f}x  {cpu / base_cpu:>6.2f}x  {peak / base_peak:>7.2f}x")
    met = wall / base_wall <= TARGET_RATIO and peak <= TARGET_PEAK_BYTES
    print(f"targets (wall <= {TARGET_RATIO:g}x baseline, peak <= 1 GB): {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())

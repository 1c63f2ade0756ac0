"""judge-sft's overhead over plain TRL: the same tiny job launched both ways, side by side, in one run.

    .venv/bin/python benchmarks/overhead.py [--repeats 2] [--max-steps 8]

Both launch 2 CPU processes under ZeRO-3 (accelerate_configs/cpu_zero3_2proc.yaml) with recipes/tiny_cpu.yaml on the
bundled HelpSteer2 sample; judge-sft adds its start-up checks, its own tokenisation, the recipe copy and the model card.
Target: judge-sft / TRL <= 1.05 in wall time.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from tiny_run import CONFIG, REPO, tiny_recipe


def prepare(workdir, max_steps):
    return tiny_recipe(workdir, max_steps=max_steps, eval_steps=max_steps)


def run(script, recipe, workdir, name):
    output_dir = workdir / name
    recipe = {**recipe, "output_dir": str(output_dir)}
    if script.name == "plain_trl_sft.py":  # plain TRL has no judge-sft keys beyond the ones its parser is given
        recipe = {
            key: value for key, value in recipe.items() if key not in ("total_batch_size", "sp_size", "cpu_offload")
        }
        recipe["gradient_accumulation_steps"] = 2  # what judge-sft derives from total_batch_size 8 = 2 x dp 2 x 2
        recipe["ddp_backend"] = "gloo"  # judge-sft sets this on CPU hosts; without it every rank trains alone
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG), str(script), str(path)]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"{name} failed:\n{result.stdout[-4000:]}")
    return wall


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        recipe = prepare(workdir, args.max_steps)
        walls = {"trl": [], "judge-sft": []}
        for repeat in range(args.repeats):  # alternate, so drift in machine load hits both alike
            walls["trl"].append(run(REPO / "benchmarks" / "plain_trl_sft.py", recipe, workdir, f"trl{repeat}"))
            walls["judge-sft"].append(run(REPO / "judge_sft" / "run.py", recipe, workdir, f"judge{repeat}"))
    trl, ours = statistics.median(walls["trl"]), statistics.median(walls["judge-sft"])
    print(f"{'':12}{'median wall s':>14}  runs")
    for name, values in walls.items():
        print(f"{name:12}{statistics.median(values):14.1f}  {', '.join(f'{v:.1f}' for v in values)}")
    print(f"ratio judge-sft / TRL: {ours / trl:.3f} (target <= 1.05)")
    print(json.dumps({"trl_s": trl, "judge_sft_s": ours, "ratio": ours / trl}))


if __name__ == "__main__":
    main()

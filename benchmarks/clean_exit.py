"""How often a 2-process CPU run aborts at exit: N short real launches of judge_sft/run.py, counted.

    .venv/bin/python benchmarks/clean_exit.py --runs 20

Under gloo, Python's own teardown has been seen to abort ~4% of 2-process DeepSpeed runs after all work was done
("terminate called without an active exception"); run.py ends with exit handlers, flushed output and os._exit.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from tiny_run import CONFIG, REPO, tiny_recipe


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        recipe = tiny_recipe(workdir, val_file=None, max_steps=1, eval_strategy="no", skip_doctor=True)
        aborted = failed = 0
        for run in range(args.runs):
            recipe["output_dir"] = str(workdir / f"out{run}")
            path = workdir / "recipe.yaml"
            path.write_text(yaml.safe_dump(recipe))
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "accelerate.commands.launch",
                    "--config_file",
                    str(CONFIG),
                    "--main_process_port",
                    str(29600 + run),
                    str(REPO / "judge_sft" / "run.py"),
                    str(path),
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            aborted += "terminate called" in result.stdout
            failed += result.returncode != 0
            print(
                f"run {run + 1}: exit {result.returncode}{' (terminate called)' if 'terminate called' in result.stdout else ''}",
                flush=True,
            )
    print(f"{args.runs} launches: {failed} non-zero exits, {aborted} aborted at exit")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

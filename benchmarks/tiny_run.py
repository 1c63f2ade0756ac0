"""What the CPU benchmarks share: the bundled sample prepared, a tiny Qwen3, and recipes/tiny_cpu.yaml pointing at them."""

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "accelerate_configs" / "cpu_zero3_2proc.yaml"
SAMPLE = REPO / "judge_sft" / "data" / "helpsteer2_sample.jsonl"


def tiny_recipe(workdir, **overrides):
    """Prepare WORKDIR/data from the bundled sample, build WORKDIR/tiny, and return tiny_cpu.yaml's recipe on them."""
    from judge_sft.tiny_model import build_tiny_model

    data = Path(workdir) / "data"
    command = [sys.executable, "-m", "judge_sft.cli", "prepare-data", "--input", str(SAMPLE), "--output-dir", str(data)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    recipe = yaml.safe_load((REPO / "recipes" / "tiny_cpu.yaml").read_text())
    recipe.update(
        model_name_or_path=str(build_tiny_model(Path(workdir) / "tiny")),
        train_file=str(data / "train.parquet"),
        val_file=str(data / "val.parquet"),
        save_strategy="no",
        report_to="none",
    )
    recipe.update(overrides)
    return recipe

"""The bug behind judge_sft.train.arguments.parse_recipe naming gloo: without a GPU, accelerate makes every DeepSpeed rank a world of one."""

import json
import subprocess
import sys

import pytest
from conftest import CPU_CONFIG, REPO, free_port

pytestmark = pytest.mark.launch  # every test here runs a real multi-process launch

# Each rank writes its own file: two ranks printing to one pipe can interleave mid-line (CI lost a rank's line that way).
PROBE = """
import json, os, sys
from pathlib import Path
from trl import SFTConfig
from judge_sft.train.arguments import parse_recipe
recipe = Path(sys.argv[1])
stock = SFTConfig(output_dir=str(recipe.parent), bf16=False, report_to="none").world_size
ours = parse_recipe([str(recipe)])[1].world_size
(recipe.parent / f"world-{os.environ['RANK']}.json").write_text(json.dumps({"stock": stock, "ours": ours}))
os._exit(0)
"""


def launched_worlds(tmp_path, recipe):
    """{"stock": [world size each rank sees], "ours": [...]} from one 2-process launch."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(CPU_CONFIG),
            "--main_process_port",
            str(free_port()),
            str(probe),
            str(recipe),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    ranks = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("world-*.json"))]
    return {key: [rank[key] for rank in ranks] for key in ("stock", "ours")}


def test_stock_stack_sees_a_world_of_one_and_parse_recipe_sees_the_launch(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model_name_or_path: m\ntrain_file: t.parquet\noutput_dir: {tmp_path}\nbf16: false\nreport_to: none\n"
    )
    worlds = launched_worlds(tmp_path, recipe)
    assert worlds["stock"] == [1, 1]  # the bug: each rank would train on all the data
    assert worlds["ours"] == [2, 2]

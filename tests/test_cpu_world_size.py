"""The bug behind judge_sft.train.arguments.parse_recipe naming gloo: without a GPU, accelerate makes every DeepSpeed rank a world of one."""

import json
import subprocess
import sys

import pytest
from conftest import CPU_CONFIG, REPO, free_port

pytestmark = pytest.mark.launch  # every test here runs a real multi-process launch

PROBE = """
import json, os, sys
from trl import SFTConfig
from judge_sft.train.arguments import parse_recipe
if sys.argv[1] == "stock":
    world = SFTConfig(output_dir=sys.argv[2], bf16=False, report_to="none").world_size
else:
    world = parse_recipe([sys.argv[2]])[1].world_size
print("WORLD", json.dumps({"rank": int(os.environ["RANK"]), "world": world}), flush=True)
os._exit(0)
"""


def launched_worlds(tmp_path, mode, recipe):
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
            mode,
            str(recipe),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    return sorted(
        json.loads(line.split("WORLD ", 1)[1])["world"] for line in result.stdout.splitlines() if "WORLD {" in line
    )


def test_stock_stack_sees_a_world_of_one_and_parse_recipe_sees_the_launch(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model_name_or_path: m\ntrain_file: t.parquet\noutput_dir: {tmp_path}\nbf16: false\nreport_to: none\n"
    )
    assert launched_worlds(tmp_path, "stock", tmp_path) == [1, 1]  # the bug: each rank would train on all the data
    assert launched_worlds(tmp_path, "ours", recipe) == [2, 2]

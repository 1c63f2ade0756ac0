"""The test driver: one `accelerate launch` (2 CPU processes) that trains several recipes one after the other with
judge_sft/run.py's `main`, each with the environment its accelerate config sets, so that tests whose runs differ only
in one world share a launch's start-up (~12 CPU s, three quarters imports). `launch_driver` starts it; it runs this file
(`drive`) over a jobs.json. What stays a real launch is what only a launch shows: a kill, a signal, each rank's exit
status (docs/development.md#how-launches-are-shared)."""

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import yaml
from conftest import CPU_CONFIG, REPO, free_port


def launch_driver(jobs, directory, config=CPU_CONFIG, env=None, refused=()):
    """One `accelerate launch` running `drive` over `jobs`, each a recipe or (recipe, environment); returns the
    launch's output by job (`job_outputs`). A job writes error.txt (a refused recipe) or trained_under.json beside its
    recipe; the recipes in `refused` must be refused, and no other. `config`: a file name in accelerate_configs/ or a
    path; `env`: set for the whole launch, a job's environment for that job only. The other launch test files share
    their launches this way."""
    jobs = [job if isinstance(job, tuple) else (job, {}) for job in jobs]
    spec = directory / "jobs.json"
    spec.write_text(json.dumps([[str(recipe), environment] for recipe, environment in jobs]))
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "accelerate_configs" / config),
        "--main_process_port",  # not the config's 29500: two driver launches may run at once, one per worker
        str(free_port()),
        str(Path(__file__).resolve()),
        str(spec),
    ]
    result = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
        cwd=REPO,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})},
    )
    if result.returncode != 0:
        raise AssertionError(f"driver launch failed ({result.returncode}):\n{result.stdout[-6000:]}")
    errors = {recipe: recipe.with_name("error.txt") for recipe, _ in jobs}
    refusals = {str(recipe): error.read_text() for recipe, error in errors.items() if error.is_file()}
    assert sorted(refusals) == sorted(map(str, refused)), refusals
    return job_outputs(result.stdout)


def config_environment(config):
    """What `accelerate launch --config_file CONFIG` sets in its processes for the ZeRO stage, offload and precision
    (accelerate/utils/launch.py's prepare_deepspeed_cmd_env): a driver job gets its config's over the launch's.
    `config`: as `launch_driver`'s."""
    config = yaml.safe_load((REPO / "accelerate_configs" / config).read_text())
    deepspeed = config["deepspeed_config"]
    return {
        "ACCELERATE_MIXED_PRECISION": config["mixed_precision"],
        "ACCELERATE_DEEPSPEED_ZERO_STAGE": str(deepspeed["zero_stage"]),
        "ACCELERATE_DEEPSPEED_ZERO3_INIT": str(deepspeed["zero3_init_flag"]).lower(),
        "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": str(deepspeed["zero3_save_16bit_model"]).lower(),
        "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": deepspeed["offload_optimizer_device"],
        "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": deepspeed["offload_param_device"],
    }


def output_under(sections, directory):
    """The output of the jobs whose recipes lie under `directory` (sections: `job_outputs`)."""
    return "".join(text for recipe, text in sections.items() if directory in recipe.parents)


JOB_MARKER = "test driver: job "


def job_outputs(output):
    """A driver launch's output split by job: recipe path -> what was printed from its start to the next job's."""
    sections, current = {}, None
    for line in output.splitlines(keepends=True):
        before, marker, recipe = line.partition(JOB_MARKER)  # the other rank may have left half a line before it
        if current is not None:
            sections[current] += before
        if marker:
            current = Path(recipe.strip())
            sections[current] = sections.get(current, "")
    return sections


def drive(spec_path):
    """Train each job's recipe with judge_sft/run.py's main, one after the other in these processes, each with its
    environment variables set (then restored). A JudgeSFTError (a refused recipe) is written to error.txt beside the
    recipe; a training writes what it trained under, as accelerate's state had it, to trained_under.json. Between
    jobs, the per-process state that a training leaves behind (accelerate's shared state, DeepSpeed's SP groups, the
    attention function Ulysses registered) is reset."""
    from accelerate.state import AcceleratorState
    from deepspeed.runtime.sequence_parallel import parallel_state_sp
    from deepspeed.utils import groups
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    from judge_sft import run
    from judge_sft.errors import JudgeSFTError

    main_process = int(os.environ["RANK"]) == 0
    for recipe, environment in json.loads(Path(spec_path).read_text()):
        job_dir = Path(recipe).parent
        if main_process:
            print(f"{JOB_MARKER}{recipe}", flush=True)
        with mock.patch.dict(os.environ, environment):
            try:
                run.main([recipe])
            except JudgeSFTError as error:
                if main_process:
                    (job_dir / "error.txt").write_text(str(error))
            else:
                if main_process:
                    state, plugin = AcceleratorState(), AcceleratorState().deepspeed_plugin
                    trained_under = {
                        "zero_stage": plugin.zero_stage,
                        "offload_optimizer_device": plugin.offload_optimizer_device,
                        "offload_param_device": plugin.offload_param_device,
                        "mixed_precision": str(state.mixed_precision),
                    }
                    (job_dir / "trained_under.json").write_text(json.dumps(trained_under))
        AcceleratorState._reset_state(reset_partial_state=True)
        parallel_state_sp._release_sequence_parallel_groups()
        groups.mpu = None
        ALL_ATTENTION_FUNCTIONS._local_mapping.pop("sdpa", None)
        gc.collect()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    drive(sys.argv[1])
    sys.stdout.flush()
    os._exit(0)  # see judge_sft/run.py exit_cleanly: gloo teardown can abort an otherwise finished process

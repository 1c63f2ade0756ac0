"""`judge-sft train`: the bundled accelerate configs by name, the recipe checked against the launch before any process
starts, and accelerate's own launcher run in this process on `judge_sft.run`, so that a failed child ends in one line."""

import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

from judge_sft.errors import JudgeSFTError
from judge_sft.train.checkpoints import last_complete_checkpoint
from judge_sft.train.launch import OFFLOAD_CONFIGS, check_cpu_offload, check_master_weights, plan_batch
from judge_sft.train.preemption import REQUEUE_STATUS

ACCELERATE_CONFIGS = Path(__file__).resolve().parents[1] / "accelerate_configs"
STANDARD_LAUNCHER = "standard"


@dataclass
class Launch:
    config_path: Path
    config: dict  # the accelerate config YAML
    num_processes: int  # in all, over every machine
    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int | None = None

    @property
    def deepspeed(self):
        return self.config.get("deepspeed_config") or {}

    def accelerate_argv(self, recipe, overrides):
        argv = ["--config_file", str(self.config_path), "--num_processes", str(self.num_processes)]
        argv += ["--num_machines", str(self.num_machines)]
        if self.num_machines > 1:
            argv += ["--machine_rank", str(self.machine_rank), "--main_process_ip", self.main_process_ip or "127.0.0.1"]
        if self.main_process_port is not None:
            argv += ["--main_process_port", str(self.main_process_port)]
        return [*argv, "--module", "judge_sft.run", str(recipe), *overrides]

    def command(self, recipe, overrides):
        return shlex.join(["accelerate", "launch", *self.accelerate_argv(recipe, overrides)])


def bundled_config_names():
    return sorted(path.stem for path in ACCELERATE_CONFIGS.glob("*.yaml"))


def resolve_config(name_or_path):
    """A bundled config by name (`zero3`, `cpu_zero3_2proc`, ...) or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise JudgeSFTError(f"{path}: no such accelerate config file")
        return path
    bundled = ACCELERATE_CONFIGS / f"{name_or_path}.yaml"
    if not bundled.is_file():
        raise JudgeSFTError(
            f"--accelerate-config {name_or_path}: no such bundled config (one of {', '.join(bundled_config_names())}, "
            "or a path to a YAML file)"
        )
    return bundled


def default_config(judge_args, num_machines, has_gpu):
    """The config the recipe implies: its cpu_offload mode's (zero3_offload_optimizer, zero3_offload), else
    zero3_multinode on several machines, zero3 on one; no GPU -> the CPU config."""
    if not has_gpu:
        return ACCELERATE_CONFIGS / "cpu_zero3_2proc.yaml"
    if judge_args.cpu_offload == "none" and num_machines > 1:
        return ACCELERATE_CONFIGS / "zero3_multinode.yaml"
    return ACCELERATE_CONFIGS / OFFLOAD_CONFIGS[judge_args.cpu_offload]


def read_config(path):
    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise JudgeSFTError(f"{path}: cannot read the accelerate config ({str(error).splitlines()[0]})")
    if not isinstance(config, dict):
        raise JudgeSFTError(f"{path}: an accelerate config is a YAML mapping")
    check_config_keys(path, config)
    return config


def check_config_keys(path, config):
    """The keys accelerate's launcher reads first, so that a recipe given for the config fails here, in one line."""
    from accelerate.utils import DistributedType

    kinds = [kind.value for kind in DistributedType]
    kind = config.get("distributed_type")
    if kind is None:
        raise JudgeSFTError(
            f"{path}: not an accelerate config (no distributed_type); name a bundled config "
            f"({', '.join(bundled_config_names())}) or write one with `accelerate config`"
        )
    if kind not in kinds:
        raise JudgeSFTError(f"{path}: distributed_type {kind!r}: expected one of {', '.join(kinds)}")
    processes = config.get("num_processes")
    if processes is not None and (isinstance(processes, bool) or not isinstance(processes, int) or processes < 1):
        raise JudgeSFTError(f"{path}: num_processes {processes!r}: expected a positive integer")


def check_launch(launch, judge_args, training_args, allow_env_file=False):
    """Everything the recipe and the launch must agree on, checked before any process starts; returns the batch plan."""
    batch = plan_batch(
        judge_args.total_batch_size, training_args.per_device_train_batch_size, launch.num_processes, judge_args.sp_size
    )
    zero = launch.deepspeed
    if launch.config.get("distributed_type") == "DEEPSPEED" and "deepspeed_config_file" not in zero:
        deepspeed_config = {
            "zero_optimization": {
                "stage": zero.get("zero_stage"),
                "offload_optimizer": {"device": zero.get("offload_optimizer_device", "none")},
                "offload_param": {"device": zero.get("offload_param_device", "none")},
            }
        }
        check_cpu_offload(judge_args.cpu_offload, deepspeed_config)
        check_master_weights(judge_args, training_args.bf16, deepspeed_config, training_args.optim)
    launcher = zero.get("deepspeed_multinode_launcher", STANDARD_LAUNCHER)
    if launch.num_machines > 1 and launcher != STANDARD_LAUNCHER and not allow_env_file:
        raise JudgeSFTError(
            f"{launch.config_path}: deepspeed_multinode_launcher {launcher} makes accelerate write this shell's whole "
            "environment (HF_TOKEN, WANDB_API_KEY included) to .deepspeed_env in the working directory; use "
            f"{STANDARD_LAUNCHER}, or pass --allow-env-file to accept that"
        )
    return batch


def run_accelerate(argv, output_dir=None):
    """accelerate's `launch` in this process; returns the exit status, with one line for a failed child. Signalled
    (Ctrl-C, SIGTERM), torchrun passes the signal on and waits for the training to stop: REQUEUE_STATUS when it saved
    a checkpoint in `output_dir` meanwhile, as a stop of run.py's own does."""
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    checkpoint_before = output_dir and last_complete_checkpoint(output_dir)
    try:
        launch_command(launch_command_parser().parse_args(argv))
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        status = failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode  # -N: killed by signal N
        if status == REQUEUE_STATUS:
            raise TrainingFailed(
                f"training stopped to be resumed (status {status}): relaunch the same command", status
            ) from None
        raise TrainingFailed(f"training failed: rank {rank} exited with status {status}", status) from None
    except SignalException as signal:  # torchrun has passed it on to the training and waited for it to stop
        checkpoint = output_dir and last_complete_checkpoint(output_dir)
        if checkpoint and checkpoint != checkpoint_before:
            raise TrainingFailed(
                f"stopped by {signal.sigval.name} after saving {checkpoint} (status {REQUEUE_STATUS}): relaunch the "
                "same command to resume",
                REQUEUE_STATUS,
            ) from None
        raise TrainingFailed(
            f"stopped by {signal.sigval.name}: relaunch the same command to resume from the newest complete checkpoint",
            128 + signal.sigval,
        ) from None
    return 0


class TrainingFailed(JudgeSFTError):
    def __init__(self, message, status):
        super().__init__(message)
        self.status = status

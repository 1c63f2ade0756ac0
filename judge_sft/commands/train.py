"""`judge-sft train RECIPE.yaml [--accelerate-config NAME|PATH] [--num-processes N] [--num-machines M --machine-rank R
--main-process-ip IP --main-process-port P] [--dry-run] [--key value ...]`: check the recipe against the launch, then
run accelerate's launcher on judge_sft.run. `accelerate launch ... judge_sft/run.py RECIPE` keeps working as well."""

import argparse

from judge_sft.commands.argtypes import positive_int
from judge_sft.train.arguments import names_gradient_accumulation, parse_recipe
from judge_sft.train.checkpoints import check_relaunch
from judge_sft.train.launch import check_gradient_accumulation
from judge_sft.train.launcher import (
    Launch,
    bundled_config_names,
    check_launch,
    default_config,
    read_config,
    resolve_config,
    run_accelerate,
)
from judge_sft.train.preflight import check_machine, check_output_dir, check_report_to, this_machine


def add_arguments(parser):
    parser.add_argument("recipe", help="the recipe YAML to train")
    add_launch_options(parser)
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="--key value recipe overrides")


def add_launch_options(parser, default=None):
    """`default=argparse.SUPPRESS` for the second pass over the arguments after the recipe."""
    parser.add_argument(
        "--accelerate-config",
        default=default,
        help=f"a bundled config ({', '.join(bundled_config_names())}) or a YAML path; default: the one the recipe "
        "implies (cpu_offload optimizer -> zero3_offload_optimizer, all -> zero3_offload, several machines -> "
        "zero3_multinode, no GPU -> cpu_zero3_2proc)",
    )
    parser.add_argument("--num-processes", type=positive_int, default=default, help="processes over all machines")
    parser.add_argument(
        "--num-machines", type=positive_int, default=default, help="machines in the launch (default: 1)"
    )
    parser.add_argument(
        "--machine-rank", type=int, default=default, help="this machine's rank, 0 to --num-machines - 1 (default: 0)"
    )
    parser.add_argument(
        "--main-process-ip", default=default, help="address of machine 0, with several machines (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--main-process-port", type=positive_int, default=default, help="port of machine 0 (default: the config's)"
    )
    parser.add_argument("--dry-run", action="store_true", default=default, help="print the launch command and exit")
    parser.add_argument(
        "--allow-env-file",
        action="store_true",
        default=default,
        help="allow a non-standard DeepSpeed multi-node launcher, which writes the environment to .deepspeed_env",
    )


def split_options(args):
    """Launch options may follow the recipe, among the `--key value` overrides: pick them out of the remainder."""
    parser = argparse.ArgumentParser(prog="judge-sft train", add_help=False, allow_abbrev=False)
    add_launch_options(parser, default=argparse.SUPPRESS)
    return parser.parse_known_args(args.overrides, namespace=args)


def main(args):
    args, overrides = split_options(args)
    judge_args, training_args, model_args = parse_recipe([args.recipe, *overrides], for_launch=False)
    check_output_dir(training_args.output_dir)
    finished = check_relaunch((judge_args, training_args, model_args))
    if finished:
        print(f"judge-sft train: {finished}")
        return 0
    num_machines = args.num_machines or 1
    if args.accelerate_config:
        config_path = resolve_config(args.accelerate_config)
    else:
        import torch

        config_path = default_config(judge_args, num_machines, torch.cuda.is_available())
    config = read_config(config_path)
    launch = Launch(
        config_path,
        config,
        num_processes=args.num_processes or int(config.get("num_processes", 1)),
        num_machines=num_machines,
        machine_rank=args.machine_rank or 0,
        main_process_ip=args.main_process_ip,
        main_process_port=args.main_process_port,
    )
    batch = check_launch(launch, judge_args, training_args, allow_env_file=args.allow_env_file)
    if not args.dry_run:  # a dry run may be made on a machine other than the launch's (a login node)
        check_machine(judge_args, training_args, model_args, this_machine(), launch.config)
    if names_gradient_accumulation([args.recipe, *overrides]):
        check_gradient_accumulation(training_args.gradient_accumulation_steps, batch)
    check_report_to(training_args.report_to)
    print(f"judge-sft train: {batch.describe()}")
    print(f"judge-sft train: {launch.command(args.recipe, overrides)}", flush=True)
    if args.dry_run:
        return 0
    return run_accelerate(launch.accelerate_argv(args.recipe, overrides), training_args.output_dir)

"""The cookbook's run parameters -> a commented YAML recipe (`judge-sft recipe`): recipes/qwen3_32b.yaml, the one copy
of the cookbook's defaults with their comments, with the given values written into it line by line."""

import re
from pathlib import Path

import yaml

from judge_sft.errors import JudgeSFTError
from judge_sft.train.launch import plan_batch

TEMPLATE = Path(__file__).resolve().parents[1] / "recipes" / "qwen3_32b.yaml"


def recipe_values(args):
    """Recipe key -> value, from the command line (cookbook parameter names in the comments)."""
    run_name = Path(args.model_path.rstrip("/")).name.lower() + "-judge"
    values = {
        "model_name_or_path": args.model_path,  # MODEL_PATH
        "train_file": args.train_file,  # TRAIN_FILE
        "val_file": args.val_file,  # VAL_FILE
        "output_dir": args.output_dir or f"outputs/{run_name}",
        "run_name": run_name,
        "total_batch_size": args.total_batch_size,  # TOTAL_BATCH_SIZE
        "per_device_train_batch_size": args.micro_batch_size,  # MICRO_BATCH_SIZE
        "per_device_eval_batch_size": args.micro_batch_size,
        "sp_size": args.sp_size,  # SP_SIZE
        "num_train_epochs": int(args.epochs) if args.epochs == int(args.epochs) else args.epochs,  # TOTAL_EPOCHS
        "max_length": args.max_length,
    }
    if args.cpu_offload is not None:
        values["cpu_offload"] = args.cpu_offload
        if args.cpu_offload != "none":  # bf16_kahan keeps the optimizer on the GPU; offload runs DeepSpeed's CPU Adam
            values["master_weights"] = "fp32"
    if args.master_weights is not None:
        values["master_weights"] = args.master_weights
    if args.val_file is None:  # no val split: nothing to evaluate on
        values["eval_strategy"] = "no"
    return values


def batch_comment(args):
    """The comment for the sp_size line: the template's spells out the arithmetic for its own values."""
    if args.num_gpus is None:
        return "Ulysses sequence parallel; gradient accumulation = total_batch_size / (micro batch x GPUs / sp_size)"
    plan = plan_batch(args.total_batch_size, args.micro_batch_size, args.num_gpus, args.sp_size)
    return (
        f"Ulysses sequence parallel: {plan.world_size} GPUs -> dp {plan.dp} -> gradient accumulation "
        f"{plan.total_batch_size} / ({plan.per_device_batch} x {plan.dp}) = {plan.grad_accum}"
    )


def yaml_scalar(value):
    """A value as it reads in flow YAML (paths quoted only when YAML needs it)."""
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip().removesuffix("\n...").strip()


def fill_template(template_text, values, comments):
    """Replace the value of each top-level `key: value  # comment` line, keeping its comment (or setting a new one).
    Keys the template lacks are appended."""
    pending = dict(values)
    lines = []
    for line in template_text.splitlines():
        match = re.match(r"^([A-Za-z_][\w]*):(\s*)([^#]*?)(\s*)(#.*)?$", line)
        if match and match.group(1) in pending:
            key = match.group(1)
            text = f"{key}: {yaml_scalar(pending.pop(key))}"
            comment = f"# {comments[key]}" if key in comments else match.group(5)
            line = f"{text:<34} {comment}" if comment else text
        lines.append(line)
    lines += [f"{key}: {yaml_scalar(value)}" for key, value in pending.items()]
    return "\n".join(lines) + "\n"


def comments_for_model(template_text, model_path):
    """The template with its comment blocks about its own model (its name, its plan's numbers) dropped when the recipe
    is for another model, and a header that says so: those numbers hold for the template's model only."""
    template_model = str(yaml.safe_load(template_text).get("model_name_or_path", ""))
    name = Path(template_model.rstrip("/")).name
    if not name or Path(model_path.rstrip("/")).name.lower() == name.lower():
        return template_text
    # its name as the comments and file names spell it: Qwen3-32B, qwen3_32b
    about_template_model = re.compile("[-_]".join(map(re.escape, re.split(r"[-_]", name))), re.I)
    lines, block = [], []
    for line in [*template_text.splitlines(), ""]:
        if line.startswith("#"):
            block.append(line)
            continue
        if block and not any(about_template_model.search(comment) for comment in block):
            lines += block
        elif block and not lines:  # the header
            lines.append(
                f"# The OpenJudge SFT cookbook's defaults, for {model_path}. Whether they fit, and the fastest"
            )
            lines.append("# cpu_offload and master_weights that do: `judge-sft plan RECIPE.yaml --num-gpus N`.")
        block = []
        lines.append(line)
    return "\n".join(lines[:-1]) + "\n"


def build_recipe(args, template_path=TEMPLATE):
    try:
        template_text = Path(template_path).read_text()
    except OSError as error:
        raise JudgeSFTError(f"{template_path}: cannot read the recipe template ({error.strerror})")
    values = recipe_values(args)
    template_text = comments_for_model(template_text, args.model_path)
    text = fill_template(template_text, values, {"sp_size": batch_comment(args)})
    written = yaml.safe_load(text)
    wrong = [key for key, value in values.items() if written.get(key) != value]
    if wrong:  # a template line the pattern did not understand: refuse rather than write a recipe that says otherwise
        raise JudgeSFTError(f"{template_path}: could not set {', '.join(wrong)} in the template")
    shown = TEMPLATE.relative_to(TEMPLATE.parents[1]) if Path(template_path) == TEMPLATE else template_path
    return f"# Written by `judge-sft recipe` from {shown}; run.py reads it as is.\n" + text

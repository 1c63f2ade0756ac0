"""The model card (README.md) of an output or checkpoint directory: base model, results and loss curve, judge evaluation,
data and its licence, the resolved recipe, framework versions. Written by the trainer at every save and by `judge-sft push`."""

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from huggingface_hub import ModelCard, ModelCardData

from judge_sft import __version__
from judge_sft.data.stats import stats_beside
from judge_sft.data.tokenization import describe_drops
from judge_sft.evaluation.card_section import evaluation_section
from judge_sft.hub.base_model import base_model_of, is_hub_id, read_adapter_config
from judge_sft.train.checkpoints import TRAINER_STATE_NAME
from judge_sft.train.inference_template import SERVERS, TEMPLATE_NAME, engines
from judge_sft.train.loss_curve import plot_losses
from judge_sft.train.sample_files import markdown_table, read_samples, sample_steps, samples_path
from judge_sft.train.saved_recipe import load_data_rows, load_recipe

CARD_NAME = "README.md"
HELPSTEER2 = {
    "id": "nvidia/HelpSteer2",
    "license": "CC-BY-4.0",
    "url": "https://huggingface.co/datasets/nvidia/HelpSteer2",
}
VLLM_URL = "http://localhost:8000/v1"
EXAMPLE_QUESTION = "Which is larger, 9.11 or 9.9? Answer in one sentence."


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def last_logged(log_history, key):
    """(value, step) of the last log entry that has `key`, or (None, None)."""
    for entry in reversed(log_history):
        if key in entry:
            return entry[key], entry.get("step")
    return None, None


def parquet_rows(path):
    try:
        return pq.read_metadata(path).num_rows
    except (OSError, TypeError, ValueError):
        return None


def card_metadata(base_model, stats):
    return ModelCardData(
        base_model=base_model if is_hub_id(base_model) else None,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["judge-sft", "judge", "sft", "trl"],
        datasets=[HELPSTEER2["id"]] if stats else None,
    )


def results_section(log_history, plot_name):
    train_loss, train_step = last_logged(log_history, "loss")
    val_loss, val_step = last_logged(log_history, "eval_loss")
    if train_loss is None and val_loss is None:
        return ["## Results", "", "No losses were logged (no trainer_state.json in this directory).", ""]
    lines = ["## Results", "", "| loss | value | at step |", "| --- | --- | --- |"]
    if train_loss is not None:
        lines.append(f"| final train loss | {train_loss:.4f} | {train_step} |")
    if val_loss is not None:
        lines.append(f"| final val loss | {val_loss:.4f} | {val_step} |")
    lines.append("")
    if plot_name:
        lines += [f"![Train and val loss against step]({plot_name})", ""]
    return lines


def samples_section(folder):
    """The completions of the last evaluation's sample rows (eval_samples), shortened; nothing when there are none."""
    if not sample_steps(folder):
        return []
    step, records = read_samples(folder)
    return [
        "## Samples",
        "",
        f"Greedy completions of the first val rows' prompts at step {step}, shortened (whole in "
        f"`{samples_path(folder, step).relative_to(folder)}`, one file per evaluation; `judge-sft samples` shows them):",
        "",
        *markdown_table(records),
        "",
    ]


def rows_note(key, path, counts):
    """' (40 rows; 38 trained on, dropped: truncation 2)' from the run's data_rows.json, else the file's row count."""
    if counts:
        used = "trained on" if key == "train_file" else "evaluated"
        dropped = f", dropped: {describe_drops(counts['dropped'])}" if counts["dropped"] else ""
        return f" ({counts['rows']} rows; {counts['kept']} {used}{dropped})"
    rows = parquet_rows(path)
    return f" ({rows} rows)" if rows is not None else ""


def data_section(recipe, stats, data_rows=None):
    lines = ["## Data", ""]
    for key in ("train_file", "val_file"):
        if recipe.get(key):
            lines.append(f"- {key}: `{recipe[key]}`" + rows_note(key, recipe[key], (data_rows or {}).get(key)))
    if stats:
        dropped = ", ".join(f"{reason} {count}" for reason, count in stats.dropped.items() if count)
        options = stats.options
        filters = [f"{name} >= {value}" for name, value in options.min.items()]
        filters += [f"{name} <= {value}" for name, value in options.max.items()]
        lines += [
            f"- prepared by `judge-sft prepare-data` from HelpSteer2: {stats.rows_read} rows read, "
            f"{stats.rows_kept} kept" + (f"; dropped: {dropped}" if dropped else ""),
            f"- filters: {', '.join(filters) or 'none'}; val split: {options.val_split}; "
            f"one per prompt: {options.one_per_prompt}; sample: {options.sample}",
            f"- inputs: {', '.join(source.source for source in stats.inputs)}",
            *(
                [f"- judge training set: `--task {stats.judge['task']}`, format {stats.judge['format']}"]
                if stats.judge
                else []
            ),
            "",
            f"**Data licence:** [HelpSteer2]({HELPSTEER2['url']}) is released under {HELPSTEER2['license']}; "
            "models trained on it must credit NVIDIA's HelpSteer2 dataset.",
        ]
    else:
        lines += [
            "",
            "**Data licence:** not recorded (the data did not come from `judge-sft prepare-data`); "
            "state the licence of your training data here.",
        ]
    return lines + [""]


def framework_versions():
    names = {
        "judge-sft": "judge-sft",
        "TRL": "trl",
        "Transformers": "transformers",
        "PyTorch": "torch",
        "DeepSpeed": "deepspeed",
        "huggingface_hub": "huggingface_hub",
    }
    lines = []
    for label, distribution in names.items():
        try:
            lines.append(f"- {label} {__version__ if label == 'judge-sft' else version(distribution)}")
        except PackageNotFoundError:
            pass
    return lines


def serve_command(folder, repo_id, base_model):
    """(shell lines, the model name to ask for): vLLM serving the model, or the base model with this adapter."""
    name = repo_id or str(folder.resolve())
    adapter = read_adapter_config(folder)
    if adapter is None:
        return [f"vllm serve {name}"], name
    # vLLM renders an adapter's prompts with the base model's template unless --chat-template names this one
    local = name.split("/")[-1] if repo_id else name
    download = [f"hf download {repo_id} --local-dir {local}"] if repo_id else []
    serve = (
        f"vllm serve {base_model} --enable-lora --max-lora-rank {adapter.get('r', 16)} --lora-modules judge={local} "
        f"--chat-template {local}/{TEMPLATE_NAME}"
    )
    return [*download, serve], "judge"


def serve_section(folder, repo_id, base_model):
    """Serving the judge with vLLM, and asking it a question through the OpenAI client."""
    command, served = serve_command(folder, repo_id, base_model)
    template = folder / TEMPLATE_NAME
    request = [
        "from openai import OpenAI",
        "",
        f'client = OpenAI(base_url="{VLLM_URL}", api_key="EMPTY")',
        "reply = client.chat.completions.create(",
        f'    model="{served}",',
        f'    messages=[{{"role": "user", "content": "{EXAMPLE_QUESTION}"}}],',
    ]
    if template.is_file() and "enable_thinking" in template.read_text():
        request += [
            "    # the judge was trained to open its answer with an empty <think></think> block: the prompt carries it",
            '    extra_body={"chat_template_kwargs": {"enable_thinking": False}},',
        ]
    request += ["    temperature=0,", ")", "print(reply.choices[0].message.content)"]
    return [
        "## Serve it",
        "",
        f"`{TEMPLATE_NAME}` renders prompts byte for byte as training did, checked in "
        + ", ".join(f"{engine} ({SERVERS[engine]})" for engine in engines())
        + ". With vLLM, an OpenAI-compatible endpoint:",
        "",
        "```bash",
        *command,
        "```",
        "",
        "```python",
        *request,
        "```",
        "",
    ]


def model_card(folder, repo_id=None, plot_name=None):
    """The card's text for an output or checkpoint directory, from what it (and its run's recipe.yaml) holds."""
    folder = Path(folder)
    recipe_path, recipe = load_recipe(folder)
    state = read_json(folder / TRAINER_STATE_NAME) or {}
    stats = stats_beside(recipe.get("train_file"))
    base_model = base_model_of(recipe)
    name = (repo_id or folder.resolve().name).split("/")[-1]
    body = [
        f"# {name}",
        "",
        f"A judge model fine-tuned from `{base_model or 'an unrecorded base model'}` by supervised fine-tuning on chat "
        f"data with judge-sft {__version__} (TRL SFTTrainer, DeepSpeed ZeRO-3).",
        "",
        f"The tokenizer carries the chat template used in training, without its training-only `{{% generation %}}` "
        f"tags (`{TEMPLATE_NAME}`): `tokenizer.apply_chat_template(messages, add_generation_prompt=True)` renders "
        "prompts exactly as training did.",
        "",
        *serve_section(folder, repo_id, base_model),
        *results_section(state.get("log_history", []), plot_name),
        *evaluation_section(folder),
        *samples_section(folder),
        *data_section(recipe, stats, load_data_rows(folder)),
        "## Recipe",
        "",
    ]
    if recipe:
        body += [
            f"The resolved recipe of the run (`{recipe_path.name}`, secrets removed):",
            "",
            "```yaml",
            yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True).rstrip(),
            "```",
            "",
        ]
    else:
        body += ["Not recorded: this directory has no recipe.yaml.", ""]
    body += ["## Framework versions", "", *framework_versions(), ""]
    return f"---\n{card_metadata(base_model, stats).to_yaml()}\n---\n\n" + "\n".join(body)


def write_model_card(folder, repo_id=None):
    """Write FOLDER/README.md (and the loss-curve PNG it shows, when losses were logged); return the card's path."""
    folder = Path(folder)
    state = read_json(folder / TRAINER_STATE_NAME) or {}
    has_losses = any("loss" in entry or "eval_loss" in entry for entry in state.get("log_history", []))
    plot_name = Path(plot_losses(folder)).name if has_losses else None
    path = folder / CARD_NAME
    ModelCard(model_card(folder, repo_id, plot_name)).save(path)
    return path

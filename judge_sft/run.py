"""Train a judge model: `accelerate launch --config_file accelerate_configs/<cfg>.yaml judge_sft/run.py RECIPE.yaml [--key value ...]`.

seed -> data -> tokenizer -> model -> trainer -> train -> save -> push, as the recipe says. Asked to stop (SIGTERM,
SIGUSR1, SIGINT, `stop_after`), it saves a checkpoint at the end of the step in progress and exits with REQUEUE_STATUS (75).
"""

import atexit
import logging
import os
import sys

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, IntervalStrategy, set_seed
from trl import get_peft_config

from judge_sft import patches
from judge_sft.data.messages import open_messages, resolve_train_on
from judge_sft.data.tokenization import describe_drops, tokenize_dataset
from judge_sft.errors import JudgeSFTError, print_error
from judge_sft.evaluation.during_training import sample_judge
from judge_sft.hub.upload import apply_hub_defaults
from judge_sft.planning.doctor import check_before_training
from judge_sft.planning.memory_model import GB
from judge_sft.planning.plan import Machines, memory_verdict
from judge_sft.train import attention, master_weights, sequence_parallel
from judge_sft.train.arguments import parse_recipe
from judge_sft.train.chat_templates import recipe_tokenizer, training_chat_template
from judge_sft.train.checkpoints import check_relaunch, last_complete_checkpoint
from judge_sft.train.inference_template import check_inference_template, inference_template
from judge_sft.train.launch import (
    check_cpu_offload,
    decided_by_main_process,
    first_to_report,
    launched_world_size,
    plan_batch,
    put_this_venv_first_on_path,
)
from judge_sft.train.model_config import require_model_source
from judge_sft.train.preemption import REQUEUE_STATUS, StopOnRequest
from judge_sft.train.samples import EvalSamples, sample_prompts
from judge_sft.train.saved_recipe import save_data_rows, save_recipe
from judge_sft.train.tiled_mlp import tile_mlp
from judge_sft.train.trainer import JudgeSFTTrainer

logger = logging.getLogger("judge_sft")


def load_split(path, judge_args, training_args, tokenizer, chat_template):
    """A messages Parquet -> (tokenised rows with labels, truncated at max_length, as inspect-data sees them; their
    count: {rows, kept, dropped: {reason: rows}})."""
    open_messages(path, judge_args.messages_key)  # exists, is Parquet, has the column with the right type
    train_on = resolve_train_on(judge_args.train_on, path)
    with training_args.main_process_first(desc=f"tokenizing {path}"):
        rows = Dataset.from_parquet(path)
        dataset, dropped = tokenize_dataset(
            rows,
            tokenizer,
            chat_template,
            training_args.max_length,
            train_on,
            judge_args.messages_key,
            training_args.truncation_mode,
            training_args.dataset_num_proc,
        )
    logger.info(
        f"{path}: {len(rows)} rows, {len(dataset)} kept (loss on {train_on} assistant message(s), max_length "
        f"{training_args.max_length}); dropped: {describe_drops(dropped)}"
    )
    return dataset, {"rows": len(rows), "kept": len(dataset), "dropped": dropped}


def no_rows(path, count):
    reasons = (
        f"all {count['rows']} dropped: {describe_drops(count['dropped'])}" if count["rows"] else "the file has none"
    )
    return f"{path}: no trainable row ({reasons})"


def load_data(judge_args, training_args, tokenizer, template):
    """(train rows, val rows or None, {split key: count}). No train row is an error; no val row, a warning and no
    evaluation. `template`: the training chat template, with its {% generation %} masks."""
    train, counts = load_split(judge_args.train_file, judge_args, training_args, tokenizer, template)
    counts = {"train_file": counts}
    if not len(train):
        raise JudgeSFTError(f"{no_rows(judge_args.train_file, counts['train_file'])}; see `judge-sft inspect-data`")
    if not judge_args.val_file:
        return train, None, counts
    val, counts["val_file"] = load_split(judge_args.val_file, judge_args, training_args, tokenizer, template)
    if not len(val):
        if training_args.should_log:
            logger.warning(f"{no_rows(judge_args.val_file, counts['val_file'])}; no val/loss will be logged")
        val, training_args.eval_strategy, training_args.do_eval = None, IntervalStrategy.NO, False
    return train, val, counts


def saved_chat_template(tokenizer, training_template, skip_doctor):
    """The template saved with every checkpoint and the final model: what training renders, without the training-only
    {% generation %} tags, checked to render the same in transformers, plain jinja2 and minijinja."""
    template = inference_template(training_template)
    try:
        engines = check_inference_template(tokenizer, training_template, template)
    except JudgeSFTError as error:
        if not skip_doctor:
            raise
        logger.warning(f"{error}; saving it anyway (skip_doctor)")
    else:
        logger.info(f"saved chat template: renders the probe conversations as training does in {', '.join(engines)}")
    return template


def configure_launch(judge_args, training_args, model_args):
    """What the recipe and the launch decide together, checked before anything loads."""
    batch = plan_batch(
        judge_args.total_batch_size,
        training_args.per_device_train_batch_size,
        launched_world_size(),
        judge_args.sp_size,
    )
    training_args.gradient_accumulation_steps = batch.grad_accum
    logger.info(batch.describe())
    plugin = training_args.deepspeed_plugin
    check_cpu_offload(judge_args.cpu_offload, plugin.deepspeed_config if plugin else None)
    require_model_source(model_args.model_name_or_path, model_args.model_revision)
    # `auto` resolved, a named backend checked: installed, supported on this GPU and with this sp_size
    choice = decided_by_main_process(
        training_args, lambda: attention.choose(model_args.attn_implementation, judge_args.sp_size)
    )
    attention.use(choice, model_args)
    sequence_parallel.configure(judge_args, training_args, model_args, launched_world_size())  # sp_size > 1
    apply_hub_defaults(training_args)  # repos private unless asked; a recipe's hub_token moves to HF_TOKEN


def check_gpu_memory(judge_args, training_args, model_args, device):
    """On GPUs: plan's memory verdict for this launch against the memory of `device` (attention.this_device: torch's,
    or as stated) and the host's, before any weights load; a run that will not fit stops here with plan's first advice."""
    if device.memory_bytes is None or training_args.max_length is None:
        return
    import psutil

    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    machines = Machines(
        num_gpus=per_node,
        num_nodes=max(launched_world_size() // per_node, 1),
        gpu_memory_gb=device.memory_bytes / GB,
        cpu_memory_gb=psutil.virtual_memory().total / GB,
    )
    verdict = memory_verdict(judge_args, training_args, model_args, machines)
    if verdict:
        raise JudgeSFTError(f"{verdict}; or set `skip_doctor: true` to try anyway")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    put_this_venv_first_on_path()  # before DeepSpeed loads (or builds) its ops
    patches.install()
    judge_args, training_args, model_args = parse_recipe(argv)
    stop = StopOnRequest(judge_args.stop_after)  # from here on SIGTERM / SIGUSR1 / SIGINT only note the request
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO if training_args.should_log else logging.WARNING)
    finished = check_relaunch((judge_args, training_args, model_args))  # or a checkpoint of another recipe: an error
    if finished:  # a relaunch after the end: the final model stays as it is
        logger.info(finished)
        return 0
    configure_launch(judge_args, training_args, model_args)
    optimizer = master_weights.configure(judge_args, training_args)  # None: transformers' AdamW
    set_seed(training_args.seed)
    if not judge_args.skip_doctor:  # `judge-sft doctor`'s checks and plan's memory; a failure stops the run here
        check_gpu_memory(judge_args, training_args, model_args, attention.this_device())
        check_before_training(judge_args, training_args, model_args)

    tokenizer = recipe_tokenizer(model_args, training_args)
    training_template = training_chat_template(tokenizer)
    tokenizer.chat_template = saved_chat_template(tokenizer, training_template, judge_args.skip_doctor)
    training_args.chat_template_path = None  # applied: SFTTrainer would put the marked template back on the tokenizer

    train_dataset, eval_dataset, data_rows = load_data(judge_args, training_args, tokenizer, training_template)
    if training_args.should_save:  # for the model card and `judge-sft push`; only once every check above passed
        save_recipe(training_args.output_dir, argv, (judge_args, training_args, model_args))
        save_data_rows(training_args.output_dir, data_rows)
    samples = sample_prompts(judge_args, tokenizer, training_args.max_length) if eval_dataset is not None else None
    # Rows are already truncated at max_length by tokenize_dataset; TRL refuses max_length with padding_free.
    training_args.max_length = None

    model = AutoModelForCausalLM.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        dtype=model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype),
        attn_implementation=model_args.attn_implementation,
    )
    if judge_args.tiled_mlp:
        tile_mlp(model)

    trainer = JudgeSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[stop],
        optimizer_cls_and_kwargs=optimizer,
    )
    if samples:
        judge = sample_judge(judge_args)
        trainer.add_callback(EvalSamples(trainer, samples, judge_args.eval_samples_max_new_tokens, judge))
    last_checkpoint = last_complete_checkpoint(training_args.output_dir)
    if last_checkpoint:
        logger.info(f"resuming from {last_checkpoint}")
    trainer.train(resume_from_checkpoint=last_checkpoint)
    if torch.cuda.is_available():  # against `judge-sft plan`'s total per GPU
        logger.info(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GB allocated (GB = 2^30 bytes)")
    if stop.stopped_at is not None:  # the relaunch saves the model, writes the card and pushes
        trainer.accelerator.wait_for_everyone()  # no rank exits (and has torchrun end the others) mid-checkpoint
        return REQUEUE_STATUS

    # Consolidated safetensors + tokenizer with the saved template. _internal_call: no push from inside save_model
    # (it would gather the ZeRO-3 weights a second time); the push below uploads what this wrote.
    trainer.save_model(training_args.output_dir, _internal_call=True)
    trainer.accelerator.wait_for_everyone()
    trainer.write_model_card()  # main process: README.md with the final losses, the loss curve, the recipe, the data
    if training_args.push_to_hub:
        trainer.push_to_hub()  # main process, after the barrier: a long upload keeps no rank waiting
    return 0


def exit_cleanly(code):
    """End the process without interpreter teardown. Under gloo, a worker thread can release a tensor while Python
    shuts down and abort the process ("terminate called without an active exception", ~4% of 2-process CPU runs);
    destroying the process group does not prevent it, skipping teardown after all work is flushed does. The atexit
    handlers still run first: reporters such as wandb finish their runs there."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    try:
        status = main()
    except JudgeSFTError as error:
        if first_to_report(str(error)):  # every rank has it: print it once
            print_error(f"judge-sft run: error: {error}")
        exit_cleanly(1)
    exit_cleanly(status)

"""What the judge writes, at every evaluation (`eval_samples`): greedy completions of the first val rows' prompts,
written to OUTPUT_DIR/samples/step-NNNNNN.jsonl (train/sample_files.py) and shown to the reporters (a wandb table, a
tensorboard text). docs/training.md "Sample generations" says what is generated, and how under ZeRO-3 and SP."""

import contextlib
import logging
import math
import time
from dataclasses import dataclass

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

from judge_sft.data.messages import iter_conversations, split_at_final_answer
from judge_sft.data.tokenization import tokenize_prompt
from judge_sft.train.sample_files import SAMPLES_DIR, markdown_table, prompt_text, write_samples

logger = logging.getLogger("judge_sft")

REPORTED_NAME = "val/samples"  # the wandb table and the tensorboard text
SECONDS_METRIC = "eval_samples_seconds"  # `val/samples_seconds` in the reporters (patches.cookbook_metric_names)


@dataclass
class SamplePrompt:
    row: int  # index of the row in the val file
    prompt: list  # the messages before the final assistant message
    reference: str  # the final assistant message's content
    input_ids: list  # the prompt rendered as inference renders it: training template, add_generation_prompt=True


def sample_prompts(judge_args, tokenizer, max_length):
    """The first `eval_samples` rows of the val file as prompts. A row whose prompt alone exceeds `max_length` is
    skipped (and counted in the log), never truncated: the model never saw such a prompt whole."""
    if not judge_args.val_file or not judge_args.eval_samples:
        return []
    prompts, too_long = [], []
    rows = iter_conversations(judge_args.val_file, judge_args.messages_key, limit=judge_args.eval_samples)
    for row, messages in rows:
        split = split_at_final_answer(messages)
        if split is None:  # an invalid row (doctor's data check names it at start-up): nothing to complete
            continue
        prompt, reference = split
        input_ids = tokenize_prompt(prompt, tokenizer)
        if max_length is not None and len(input_ids) > max_length:
            too_long.append(f"{row} ({len(input_ids)} tokens)")
            continue
        prompts.append(SamplePrompt(row, prompt, reference["content"], input_ids))
    if too_long and PartialState().is_main_process:  # every rank reads the same rows; one says so
        logger.warning(
            f"{judge_args.val_file}: eval_samples skips {len(too_long)} of the first {judge_args.eval_samples} rows, "
            f"whose prompt alone exceeds max_length {max_length}: rows {', '.join(too_long)}"
        )
    logger.info(
        f"eval_samples: {len(prompts)} val rows completed greedily (up to {judge_args.eval_samples_max_new_tokens} "
        f"new tokens) at every evaluation, written to OUTPUT_DIR/{SAMPLES_DIR}/"
    )
    return prompts


def generate_completions(trainer, prompts, max_new_tokens):
    """The greedy completion of every prompt, on every rank. Ranks take the prompts in turns and generate one at a
    time, as inference would; every rank runs the same number of `generate` calls (a rank out of prompts repeats one)
    and, under ZeRO-3, `synced_gpus` keeps them in step to the end of the longest, since each forward gathers the
    partitioned weights from all ranks. Under sequence parallelism each rank runs whole sequences, without Ulysses."""
    accelerator, model, tokenizer = trainer.accelerator, trainer.model, trainer.processing_class
    rank, world = accelerator.process_index, accelerator.num_processes
    synced = is_deepspeed_zero3_enabled() and world > 1
    completions = []
    was_training = model.training
    model.eval()
    without_sp = trainer.sp.attention_without_sp() if trainer.sp else contextlib.nullcontext()
    with torch.no_grad(), without_sp:
        for turn in range(math.ceil(len(prompts) / world)):
            index = turn * world + rank
            prompt = prompts[min(index, len(prompts) - 1)]
            input_ids = torch.tensor([prompt.input_ids], device=accelerator.device)
            output = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
                synced_gpus=synced,
            )
            if index < len(prompts):
                completions.append((index, tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)))
    model.train(was_training)
    return [completion for _, completion in sorted(gather_object(completions))]


def report(trainer, step, records):
    """The samples to the reporters the recipe names: a wandb table, a tensorboard text (main process)."""
    if "wandb" in trainer.args.report_to:
        import wandb

        if wandb.run is not None:
            columns = ["step", "row", "prompt", "reference", "completion"]
            data = [
                [
                    record["step"],
                    record["row"],
                    prompt_text(record["prompt"]),
                    record["reference"],
                    record["completion"],
                ]
                for record in records
            ]
            wandb.run.log({REPORTED_NAME: wandb.Table(columns=columns, data=data), "train/global_step": step})
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.tb_writer is not None:
            callback.tb_writer.add_text(REPORTED_NAME, "\n".join(markdown_table(records)), step)


class EvalSamples(TrainerCallback):
    """After every evaluation (also the one after the last step): the sample completions, written and reported by the
    main process, `val/samples_seconds`, the time generation took, and with `judge` (eval_judge,
    evaluation/during_training.py) the judge metrics of the completions."""

    def __init__(self, trainer, prompts, max_new_tokens, judge=None):
        self.trainer, self.prompts, self.max_new_tokens, self.judge = trainer, prompts, max_new_tokens, judge

    def on_evaluate(self, args, state, control, **kwargs):
        start = time.perf_counter()
        completions = generate_completions(self.trainer, self.prompts, self.max_new_tokens)
        seconds = time.perf_counter() - start
        records = [
            {
                "step": state.global_step,
                "row": prompt.row,
                "prompt": prompt.prompt,
                "reference": prompt.reference,
                "completion": completion,
            }
            for prompt, completion in zip(self.prompts, completions)
        ]
        if self.trainer.is_world_process_zero():
            write_samples(args.output_dir, state.global_step, records)
            report(self.trainer, state.global_step, records)
        metrics = {SECONDS_METRIC: round(seconds, 3)}
        if self.judge is not None:  # every rank has every completion: the same values, logged by the main process
            metrics.update(self.judge.metrics([prompt.row for prompt in self.prompts], completions))
        self.trainer.log(metrics)

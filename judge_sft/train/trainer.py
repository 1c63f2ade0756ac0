"""TRL's SFTTrainer, with evaluation after the last step, num_tokens kept across resumes, the cookbook's metric names on
the console, the SP hooks, and judge-sft's model card and Hub push."""

import logging
import os
from pathlib import Path

from transformers import PrinterCallback, ProgressCallback, TrainerCallback
from transformers.trainer_callback import ExportableState
from trl import SFTTrainer

from judge_sft import patches
from judge_sft.hub.card import write_model_card
from judge_sft.hub.upload import describe_failure, prepare_repo, push_folder
from judge_sft.train import sequence_parallel
from judge_sft.train.checkpoints import TRAINER_STATE_NAME

logger = logging.getLogger("judge_sft")


class EvaluateAtEnd(TrainerCallback):
    """Validate after the last optimizer step too, inside training, so reporters log it before they close."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == state.max_steps and args.eval_strategy != "no":
            control.should_evaluate = True


class TrainedTokens(TrainerCallback, ExportableState):
    """TRL's `num_tokens` (tokens trained so far) is a trainer attribute, outside the checkpoint: kept in
    trainer_state.json's stateful_callbacks, and restored on resume, so that it counts on from the checkpoint."""

    def __init__(self, trainer):
        self.trainer = trainer

    def state(self):
        return {"args": {}, "attributes": {"num_tokens": self.trainer._total_train_tokens}}

    def on_train_begin(self, args, state, control, **kwargs):
        saved = state.stateful_callbacks.setdefault(type(self).__name__, self.state())
        self.trainer._total_train_tokens = saved["attributes"]["num_tokens"]


def console_logs(logs):
    """A log under the names the reporters get (train/loss, train/lr, val/loss, ...), without total_flos as before."""
    return patches.cookbook_names({key: value for key, value in logs.items() if key != "total_flos"})


class CookbookProgress(ProgressCallback):
    def on_log(self, args, state, control, logs=None, **kwargs):
        super().on_log(args, state, control, logs=console_logs(logs), **kwargs)


class CookbookPrinter(PrinterCallback):  # the same, with `disable_tqdm`
    def on_log(self, args, state, control, logs=None, **kwargs):
        super().on_log(args, state, control, logs=console_logs(logs), **kwargs)


class JudgeSFTTrainer(SFTTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(EvaluateAtEnd)
        self.add_callback(TrainedTokens(self))
        for stock, cookbook in ((ProgressCallback, CookbookProgress), (PrinterCallback, CookbookPrinter)):
            if self.pop_callback(stock):
                self.add_callback(cookbook)
        self.sp = sequence_parallel.attach(self)  # None unless the recipe's sp_size > 1

    def _run_epoch(self, *args, **kwargs):
        # A relaunch after a stop at the last step resumes at max_steps; transformers would train a step past it.
        if self.state.global_step < self.state.max_steps:
            super()._run_epoch(*args, **kwargs)

    # ---- Sequence parallelism (judge_sft/train/sequence_parallel.py): sp_size 1 keeps TRL's path

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.sp:
            return self.sp.compute_loss(model, inputs, return_outputs, num_items_in_batch)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _get_num_items_in_batch(self, batch_samples, device):
        if self.sp:
            return self.sp.count_trained_tokens(batch_samples, device)
        return super()._get_num_items_in_batch(batch_samples, device)

    def get_eval_dataloader(self, eval_dataset=None):
        loader = super().get_eval_dataloader(eval_dataset)
        return self.sp.shard(loader) if self.sp else loader

    # ---- Hub: judge-sft's card, repo and push (judge_sft/hub/) in place of TRL's and transformers' own

    def create_model_card(self, *args, **kwargs):
        """TRL calls this at every checkpoint save, to write its generic card into output_dir, where no model is yet
        (a stop leaves none): nothing here. judge-sft's card comes with the final model (`write_model_card`)."""

    def write_model_card(self):
        """Main process: README.md in output_dir (final losses, loss curve, recipe, data), trainer_state.json beside
        it; both mark the final model as saved (checkpoints.finished_run)."""
        if self.is_world_process_zero():
            self.state.save_to_json(os.path.join(self.args.output_dir, TRAINER_STATE_NAME))
            write_model_card(self.args.output_dir, self.hub_model_id)

    def init_hf_repo(self, token=None, private=None):
        """Create the repo, and the `hub_revision` branch that transformers would leave missing; fail before training."""
        if not self.is_world_process_zero():
            return
        repo_id = self.args.hub_model_id or Path(self.args.output_dir).absolute().name
        private = self.args.hub_private_repo if private is None else private
        self.hub_model_id = prepare_repo(repo_id, private=private, revision=self.args.hub_revision)
        self.push_in_progress = None

    def _push_from_checkpoint(self, checkpoint_folder):
        """transformers uploads checkpoints in the background and drops their errors: log them."""
        super()._push_from_checkpoint(checkpoint_folder)
        for job in getattr(getattr(self, "push_in_progress", None), "jobs", None) or []:  # main process only
            if not getattr(job, "judge_sft_watched", False):
                job.judge_sft_watched = True
                job.add_done_callback(_warn_on_failed_push)

    def push_to_hub(
        self, commit_message="End of training", blocking=True, token=None, revision=None, private=None, **kwargs
    ):
        """Upload output_dir as save_model left it (no second ZeRO-3 gather), never optimizer state or partitioned
        shards; main process only. A failure raises JudgeSFTError naming the `judge-sft push` that completes it."""
        if not self.is_world_process_zero():
            return None
        self._finish_current_push()
        revision = revision or self.args.hub_revision
        self.hub_model_id = prepare_repo(self.hub_model_id, private=self.args.hub_private_repo, revision=revision)
        self.write_model_card()
        return push_folder(self.args.output_dir, self.hub_model_id, revision=revision, commit_message=commit_message)


def _warn_on_failed_push(job):
    if job.exception() is not None:
        logger.warning(
            f"a checkpoint push to the Hub failed: {describe_failure(job.exception())}; the next save or "
            "the push at the end of training uploads the output directory again"
        )

"""TRL's SFTTrainer, with the cookbook's metric names."""

from transformers import TrainerCallback
from transformers.integrations import integration_utils
from trl import SFTTrainer


class EvaluateAtEnd(TrainerCallback):
    """Validate after the last optimizer step too, inside training, so reporters log it before they close."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == state.max_steps and args.eval_strategy != "no":
            control.should_evaluate = True


class JudgeSFTTrainer(SFTTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(EvaluateAtEnd)

    def log(self, logs, start_time=None):
        if "learning_rate" in logs:  # the cookbook plots `train/lr`
            logs["lr"] = logs.pop("learning_rate")
        super().log(logs, start_time)


def _cookbook_metric_names(logs):
    """transformers' reporters (wandb, tensorboard, trackio, ...) share `rewrite_logs`, which files `eval_*` under
    `eval/`; the cookbook's dashboards read `val/loss`. Patched here, once, for every reporter."""
    return {key.replace("eval/", "val/", 1): value for key, value in _stock_rewrite_logs(logs).items()}


_stock_rewrite_logs = integration_utils.rewrite_logs
integration_utils.rewrite_logs = _cookbook_metric_names

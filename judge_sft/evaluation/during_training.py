"""`eval_judge: true`: at every evaluation, the eval samples' completions (train/samples.py) read by the val file's own
verdict parser and scored against those rows' human labels, as `judge-sft evaluate` scores them (evaluation/metrics.py)
but on these few rows and without intervals: `val/judge_accuracy` (pairwise) or `val/judge_mae` and
`val/judge_spearman` (pointwise, the mean over the graded attributes), and `val/judge_parse_rate`, in the reporters,
trainer_state.json (so the loss-curve plot and the model card) and nowhere else."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from judge_sft.errors import JudgeSFTError
from judge_sft.judges.columns import JUDGE_TASKS, read_judge_metadata
from judge_sft.judges.verdicts import parse_verdict

LOGGED_PREFIX = "eval_judge_"  # what the callback logs: `val/judge_*` in the reporters (patches.cookbook_metric_names)
POINTWISE_METRICS = ("mae", "spearman")


def check_eval_judge(judge_args):
    """The recipe's eval_judge, checked before anything loads."""
    if not judge_args.eval_judge:
        return
    if not judge_args.eval_samples:
        raise JudgeSFTError("recipe: eval_judge scores the eval samples' completions: set eval_samples to 1 or more")
    if not judge_args.val_file:
        raise JudgeSFTError("recipe: eval_judge needs a val_file written by `judge-sft prepare-data --task`")
    if Path(judge_args.val_file).is_file():  # a missing file is named by the data checks
        task, _, _ = read_judge_metadata(pq.read_schema(judge_args.val_file))
        if task not in JUDGE_TASKS:
            raise JudgeSFTError(
                f"recipe: eval_judge needs a judge val_file, and {judge_args.val_file} has no judge_sft.task "
                "metadata (no labels to score against); write it with `judge-sft prepare-data --task "
                "pointwise|pairwise` or remove eval_judge"
            )


class SampleJudge:
    """The labels of the val file's first `eval_samples` rows, and the judge metrics of their completions."""

    def __init__(self, val_file, eval_samples):
        from judge_sft.evaluation.judge_data import read_judge_rows

        self.data = read_judge_rows(val_file, limit=eval_samples)

    def metrics(self, rows, completions):
        """{`eval_judge_<metric>`: value} of the completions of these val rows; a metric with no value on them (e.g.
        Spearman of constant ratings) is left out."""
        from judge_sft.evaluation.metrics import Undefined, statistics

        data = self.data
        verdicts = [None] * len(data)
        for row, completion in zip(rows, completions):
            verdicts[row] = parse_verdict(data.task, data.format_name, completion, data.attributes)
        units, statistic = np.array(rows, dtype=int), statistics(data, verdicts)
        values = {"parse_rate": 1.0 - statistic["parse_failure_rate"].on(units)}
        if data.task == "pairwise":
            values["accuracy"] = statistic["accuracy"].on(units)
        for metric in POINTWISE_METRICS if data.task == "pointwise" else ():
            defined = []
            for by_attribute in statistic["attributes"].values():
                try:
                    defined.append(by_attribute[metric].on(units))
                except Undefined:
                    pass
            if defined:
                values[metric] = float(np.mean(defined))
        return {LOGGED_PREFIX + name: round(value, 4) for name, value in values.items()}


def sample_judge(judge_args):
    """The scorer of the eval samples when the recipe sets eval_judge, else None."""
    return SampleJudge(judge_args.val_file, judge_args.eval_samples) if judge_args.eval_judge else None

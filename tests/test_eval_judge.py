"""`eval_judge: true` (evaluation/during_training.py): at every evaluation the eval samples' verdicts are scored
against the judge val file's labels and logged as val/judge_* (reporters, trainer_state.json, the loss-curve plot's
companion panel, the model card). Values are checked against scipy and hand counts on the labels read with pyarrow;
the training that logs them shares tests/test_judge_training.py's launch."""

import pyarrow.parquet as pq
import pytest
from conftest import write_messages
from judge_files import write_pairwise, write_pointwise
from scipy import stats

from judge_sft.errors import JudgeSFTError
from judge_sft.evaluation.during_training import SampleJudge
from judge_sft.judges.verdicts import render_verdict
from judge_sft.train.arguments import parse_recipe

STRENGTHS = [-2, 1, 3, -1]  # 4 pairs, both orders: 8 val rows


def test_pairwise_accuracy_counts_an_unparsable_verdict_as_wrong_and_the_parse_rate_counts_it(tmp_path):
    val = write_pairwise(tmp_path / "val.parquet", STRENGTHS)
    labels = pq.read_table(val, columns=["label"])["label"].to_pylist()
    wrong = {"A": "B", "B": "A"}
    completions = {
        0: f"Because.\n<better>{labels[0]}</better>",
        1: f"<better>{wrong[labels[1]]}</better>",
        2: "no verdict here",
        3: f"<think>maybe <better>{wrong[labels[3]]}</better></think>\n<better>{labels[3]}</better>",
        5: f"<better>{labels[5]}</better>",
    }
    metrics = SampleJudge(val, 6).metrics(list(completions), list(completions.values()))
    assert metrics == {"eval_judge_parse_rate": 0.8, "eval_judge_accuracy": 0.6}  # 4 of 5 parsed, 3 of 5 right


def test_pointwise_mae_and_spearman_are_over_the_parsed_verdicts_and_averaged_over_the_attributes(tmp_path):
    attributes = ("helpfulness", "correctness")
    ratings = [{"helpfulness": h, "correctness": c} for h, c in [(4, 3), (1, 2), (3, 0), (0, 4), (2, 2)]]
    val = write_pointwise(tmp_path / "val.parquet", ratings, attributes=attributes)
    judged = {0: {"helpfulness": 4, "correctness": 2}, 1: {"helpfulness": 2, "correctness": 2},
              3: {"helpfulness": 1, "correctness": 3}, 4: {"helpfulness": 1, "correctness": 1}}  # fmt: skip
    completions = {row: render_verdict("pointwise", "openjudge", verdict) for row, verdict in judged.items()}
    completions[2] = "<score>helpfulness: 9</score>"  # out of range: unparsable
    rows = sorted(completions)
    metrics = SampleJudge(val, 5).metrics(rows, [completions[row] for row in rows])
    table = pq.read_table(val).to_pydict()
    mae, spearman = [], []
    for name in attributes:
        human = [table[name][row] for row in judged]
        judge = [verdict[name] for verdict in judged.values()]
        mae.append(sum(abs(a - b) for a, b in zip(human, judge)) / len(judged))
        spearman.append(stats.spearmanr(human, judge).statistic)
    assert metrics == {
        "eval_judge_parse_rate": 0.8,
        "eval_judge_mae": round(sum(mae) / 2, 4),
        "eval_judge_spearman": round(sum(spearman) / 2, 4),
    }


def test_a_metric_without_a_value_on_the_samples_is_left_out(tmp_path):
    val = write_pointwise(tmp_path / "val.parquet", [{"helpfulness": rating} for rating in (0, 4, 2)])
    same = render_verdict("pointwise", "openjudge", {"helpfulness": 2})
    metrics = SampleJudge(val, 3).metrics([0, 1, 2], [same, same, same])  # constant ratings: no Spearman
    assert metrics == {"eval_judge_parse_rate": 1.0, "eval_judge_mae": 1.3333}


@pytest.mark.parametrize(
    "settings, error",
    [
        (
            ["--eval_samples", "0"],
            "recipe: eval_judge scores the eval samples' completions: set eval_samples to 1 or more",
        ),
        (
            ["--val_file", "{messages}"],
            "recipe: eval_judge needs a judge val_file, and {messages} has no judge_sft.task metadata (no labels to "
            "score against); write it with `judge-sft prepare-data --task pointwise|pairwise` or remove eval_judge",
        ),
    ],
    ids=["eval_samples 0", "val file without labels"],
)
def test_eval_judge_is_refused_without_eval_samples_or_a_judge_val_file(tmp_path, settings, error):
    messages = write_messages(tmp_path / "val.parquet", [[{"role": "user", "content": "hi"}]])
    settings = [value.format(messages=messages) for value in settings]
    with pytest.raises(JudgeSFTError) as raised:
        parse_recipe(["--train_file", "train.parquet", "--eval_judge", "true", *settings], for_launch=False)
    assert str(raised.value) == error.format(messages=messages)


def test_eval_judge_takes_true_or_false_only(tmp_path):
    with pytest.raises(JudgeSFTError) as raised:
        parse_recipe(["--train_file", "train.parquet", "--eval_judge", "sometimes"], for_launch=False)
    assert "eval_judge" in str(raised.value) and "true or false" in str(raised.value)

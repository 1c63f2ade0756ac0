"""The judge metrics against independent computations on fixed verdicts: scipy called directly, and small cases
checked by hand (all right, all wrong, all unparsable, ties, one class only, a single row)."""

import numpy as np
import pytest
from judge_files import write_pairwise, write_pointwise
from scipy import stats

from judge_sft.evaluation.judge_data import read_judge_rows
from judge_sft.evaluation.metrics import (
    CONFIDENCE,
    SEED,
    confusion,
    difference,
    estimate,
    map_tree,
    statistics,
)

HUMAN = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 2, 3]
JUDGED = [0, 2, 2, 3, 3, None, 4, 2, 0, 0, None, 1]
RESAMPLES = 300  # evaluate's default is 1000 (`--resamples`): fewer keep these tests fast, the method is the same


def pointwise_data(tmp_path, ratings, attributes=("helpfulness",)):
    rows = [{name: rating for name in attributes} for rating in ratings]
    return read_judge_rows(write_pointwise(tmp_path / "pointwise.parquet", rows, attributes=attributes))


def verdicts_of(ratings, attribute="helpfulness"):
    return [None if rating is None else {attribute: rating} for rating in ratings]


def scipy_interval(values):
    """scipy.stats.bootstrap of the mean of per-row values, with the seed and settings evaluate uses."""
    result = stats.bootstrap(
        (np.asarray(values, dtype=float),),
        np.mean,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(SEED),
    )
    return [result.confidence_interval.low, result.confidence_interval.high]


def metrics_of(data, verdicts):
    return map_tree(lambda statistic: estimate(statistic, RESAMPLES), statistics(data, verdicts))


def test_pointwise_metrics_equal_scipy_and_numpy_on_the_parsed_rows(tmp_path):
    data = pointwise_data(tmp_path, HUMAN)
    metrics = metrics_of(data, verdicts_of(JUDGED))["attributes"]["helpfulness"]
    parsed = [index for index, rating in enumerate(JUDGED) if rating is not None]
    human = np.array([HUMAN[index] for index in parsed])
    judged = np.array([JUDGED[index] for index in parsed])
    exact = [rating is not None and rating == label for rating, label in zip(JUDGED, HUMAN)]

    assert metrics["exact_accuracy"]["value"] == pytest.approx(5 / 12)  # rows 0, 2, 3, 7, 9
    assert metrics["exact_accuracy"]["n"] == 12
    assert metrics["exact_accuracy"]["ci"] == pytest.approx(scipy_interval(exact))
    assert metrics["within_1_accuracy"]["value"] == pytest.approx(9 / 12)  # rows 10 (unparsable) and 11 (off by 2) miss
    assert metrics["mae"] == {**metrics["mae"], "value": pytest.approx(np.abs(human - judged).mean()), "n": 10}
    assert metrics["pearson"]["value"] == pytest.approx(stats.pearsonr(human, judged).statistic)
    assert metrics["spearman"]["value"] == pytest.approx(stats.spearmanr(human, judged).statistic)
    assert metrics["kendall_tau"]["value"] == pytest.approx(stats.kendalltau(human, judged).statistic)
    assert metrics["pearson"]["n"] == 10
    low, high = metrics["spearman"]["ci"]
    assert low < metrics["spearman"]["value"] < high


def test_pairwise_agreement_orders_two_responses_to_a_prompt_as_the_humans_do_and_leaves_out_their_ties(tmp_path):
    # prompts (rows 0/1, 2/3, 4/5, 6/7): humans 1<3, 2=2 (a tie: left out), 4>0, 1<2
    data = pointwise_data(tmp_path, [1, 3, 2, 2, 4, 0, 1, 2])
    # judge: 0<4 agrees; the tie is not counted; 2=2 is a judge tie: no agreement; 1 vs unparsable: no agreement
    verdicts = verdicts_of([0, 4, 3, 1, 2, 2, 1, None])
    agreement = metrics_of(data, verdicts)["attributes"]["helpfulness"]["pairwise_agreement"]
    assert (agreement["value"], agreement["n"]) == (pytest.approx(1 / 3), 3)


def test_a_judge_right_on_every_row_scores_one_with_an_interval_of_one(tmp_path):
    data = pointwise_data(tmp_path, HUMAN)
    metrics = metrics_of(data, verdicts_of(HUMAN))
    helpfulness = metrics["attributes"]["helpfulness"]
    assert helpfulness["exact_accuracy"] == {"value": 1.0, "n": 12, "ci": [1.0, 1.0]}
    assert helpfulness["mae"] == {"value": 0.0, "n": 12, "ci": [0.0, 0.0]}
    assert helpfulness["pearson"]["value"] == pytest.approx(1.0)
    assert metrics["parse_failure_rate"] == {"value": 0.0, "n": 12, "ci": [0.0, 0.0]}


def test_a_judge_wrong_on_every_row_scores_zero(tmp_path):
    data = pointwise_data(tmp_path, [0, 4, 0, 4])
    helpfulness = metrics_of(data, verdicts_of([4, 0, 4, 0]))["attributes"]["helpfulness"]
    assert helpfulness["exact_accuracy"] == {"value": 0.0, "n": 4, "ci": [0.0, 0.0]}
    assert helpfulness["within_1_accuracy"]["value"] == 0.0
    assert helpfulness["mae"]["value"] == 4.0
    assert helpfulness["pearson"]["value"] == pytest.approx(-1.0)
    assert helpfulness["pairwise_agreement"]["value"] == 0.0


def test_all_unparsable_verdicts_count_as_wrong_and_leave_the_verdict_statistics_undefined(tmp_path):
    data = pointwise_data(tmp_path, [0, 1, 2, 3])
    metrics = metrics_of(data, [None] * 4)
    helpfulness = metrics["attributes"]["helpfulness"]
    assert metrics["parse_failure_rate"] == {"value": 1.0, "n": 4, "ci": [1.0, 1.0]}
    assert helpfulness["exact_accuracy"] == {"value": 0.0, "n": 4, "ci": [0.0, 0.0]}
    for name in ("mae", "pearson", "spearman", "kendall_tau"):
        assert helpfulness[name] == {"value": None, "n": 0, "ci": None, "reason": "no parsed verdict"}


def test_constant_predictions_and_one_class_only_are_reported_undefined_not_nan(tmp_path):
    data = pointwise_data(tmp_path, [0, 1, 2, 3])
    constant = metrics_of(data, verdicts_of([2, 2, 2, 2]))["attributes"]["helpfulness"]
    assert constant["spearman"] == {"value": None, "n": 4, "ci": None, "reason": "constant predictions"}
    one_class = metrics_of(pointwise_data(tmp_path, [3, 3, 3, 3]), verdicts_of([3, 2, 3, 4]))["attributes"]
    assert one_class["helpfulness"]["kendall_tau"]["reason"] == "one class only in the labels"
    assert one_class["helpfulness"]["exact_accuracy"]["value"] == 0.5
    assert one_class["helpfulness"]["pairwise_agreement"] == {
        "value": None,
        "n": 0,
        "ci": None,
        "reason": "no two responses to a prompt rated apart",
    }


def test_an_interval_undefined_in_some_resamples_is_none_with_the_count(tmp_path):
    data = pointwise_data(tmp_path, [0, 1, 2, 3])
    pearson = metrics_of(data, verdicts_of([0, 1, 3, 3]))["attributes"]["helpfulness"]["pearson"]
    assert pearson["value"] == pytest.approx(stats.pearsonr([0, 1, 2, 3], [0, 1, 3, 3]).statistic)
    assert pearson["ci"] is None
    assert pearson["reason"].startswith("undefined in ") and pearson["reason"].endswith(f" of {RESAMPLES} resamples")


def test_a_single_row_has_a_value_but_no_interval(tmp_path):
    data = pointwise_data(tmp_path, [3])
    accuracy = metrics_of(data, verdicts_of([3]))["attributes"]["helpfulness"]["exact_accuracy"]
    assert accuracy == {"value": 1.0, "n": 1, "ci": None, "reason": "fewer than 2 rows: no interval"}


def test_pairwise_metrics_checked_by_hand(tmp_path):
    # pairs (order 0, order 1): strengths -3 (labels A, B), 2 (B, A), -1 (A, B), 1 (B, A)
    data = read_judge_rows(write_pairwise(tmp_path / "pairwise.parquet", [-3, 2, -1, 1]))
    assert data.labels == ["A", "B", "B", "A", "A", "B", "B", "A"]
    verdicts = ["A", "B", "A", "A", "A", None, "B", "B"]
    metrics = metrics_of(data, verdicts)
    correct = [True, True, False, True, True, False, True, False]
    assert metrics["accuracy"]["value"] == 5 / 8
    assert metrics["accuracy"]["ci"] == pytest.approx(scipy_interval(correct))
    assert metrics["accuracy_by_strength"]["3"]["value"] == 1.0
    assert metrics["accuracy_by_strength"]["2"]["value"] == 0.5
    assert (metrics["accuracy_by_strength"]["1"]["value"], metrics["accuracy_by_strength"]["1"]["n"]) == (0.5, 4)
    # pair 1 consistent (A then B), pair 2 not (A, A), pair 3 unparsable (left out), pair 4 not (B, B)
    assert (metrics["position_consistency"]["value"], metrics["position_consistency"]["n"]) == (pytest.approx(1 / 3), 3)
    assert (metrics["both_orders_correct"]["value"], metrics["both_orders_correct"]["n"]) == (0.25, 4)
    assert (metrics["prefer_first_rate"]["value"], metrics["prefer_first_rate"]["n"]) == (pytest.approx(4 / 7), 7)
    assert metrics["parse_failure_rate"]["value"] == 1 / 8
    assert confusion(data, verdicts) == {
        "labels": ["A", "B"],
        "predicted": ["A", "B", "unparsable"],
        "counts": [[3, 1, 0], [1, 2, 1]],
    }


def test_a_pair_shown_in_one_order_only_counts_for_accuracy_not_for_consistency(tmp_path):
    data = read_judge_rows(write_pairwise(tmp_path / "pairwise.parquet", [-3, 2], both_orders=False))
    metrics = metrics_of(data, ["A", "B"])
    assert metrics["accuracy"]["value"] == 1.0
    assert metrics["position_consistency"] == {
        "value": None,
        "n": 0,
        "ci": None,
        "reason": "no pair with both verdicts parsed",
    }
    assert metrics["both_orders_correct"]["reason"] == "no rows"


def test_the_difference_of_two_judges_is_scipys_paired_bootstrap_of_the_same_rows(tmp_path):
    data = pointwise_data(tmp_path, HUMAN)
    base, trained = verdicts_of([2] * 12), verdicts_of(JUDGED)
    pair = (statistics(data, base), statistics(data, trained))
    delta = map_tree(lambda first, second: difference(first, second, RESAMPLES), *pair)["attributes"]["helpfulness"]
    right_base = np.array([label == 2 for label in HUMAN], dtype=float)
    right_trained = np.array([rating == label for rating, label in zip(JUDGED, HUMAN)], dtype=float)
    expected = stats.bootstrap(
        (right_base, right_trained),
        lambda first, second: np.mean(second) - np.mean(first),
        paired=True,
        vectorized=False,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(SEED),
    ).confidence_interval
    assert delta["exact_accuracy"]["value"] == pytest.approx(right_trained.mean() - right_base.mean())
    assert delta["exact_accuracy"]["ci"] == pytest.approx([expected.low, expected.high])
    assert delta["mae"]["n"] == 10  # the rows both judges' MAE is computed on
    assert delta["spearman"]["reason"] == "constant predictions"  # the base judge says 2 every time

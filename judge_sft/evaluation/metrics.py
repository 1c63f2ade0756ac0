"""How well a judge judges, each metric with its n and a seeded 95% percentile bootstrap interval (scipy.stats.bootstrap
over the rows, or pairs, it is computed on), and the difference between two judges on the same rows (a paired bootstrap:
both judges' metrics on the same resampled rows). docs/evaluation.md says what each metric means.

Accuracies count an unparsable verdict as wrong (n: every row); the statistics of the verdicts themselves (MAE,
correlations, position consistency, prefer-first rate) are over the parsed verdicts, and n says how many. A metric
with no value (no rows, one class only, constant predictions) is reported with None and the reason, never NaN.
"""

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 1000  # the default; `evaluate --resamples`
SEED = 0
NO_VERDICT = "no parsed verdict"


class Undefined(Exception):
    """A metric with no value on these rows; the message says why."""


@dataclass(frozen=True)
class Statistic:
    """A metric over units (rows or pairs of rows): `mask` says which units it is computed on, `compute` maps the
    indices of such units to the value (raising Undefined when there is none)."""

    mask: np.ndarray
    compute: Callable[[np.ndarray], float]
    empty: str = "no rows"  # why there is no value when the mask is empty

    def on(self, units):
        """The value on any (resampled) units: those outside the mask left out."""
        return self.compute(units[self.mask[units]])


def result(value, n, interval=None, reason=None):
    entry = {"value": value, "n": n, "ci": interval}
    if reason:
        entry["reason"] = reason
    return entry


def bootstrap_interval(function, units, resamples=RESAMPLES):
    """([low, high], None) of `function` over resamples of `units`, or (None, why)."""
    if len(units) < 2:
        return None, "fewer than 2 rows: no interval"

    def statistic(sample):
        try:
            return function(sample.astype(int))
        except Undefined:
            return np.nan

    with warnings.catch_warnings():  # the undefined resamples are counted below
        warnings.simplefilter("ignore")
        boot = stats.bootstrap(
            (units,),
            statistic,
            vectorized=False,
            n_resamples=resamples,
            confidence_level=CONFIDENCE,
            method="percentile",
            rng=np.random.default_rng(SEED),
        )
    undefined = int(np.isnan(boot.bootstrap_distribution).sum())
    if undefined:
        return None, f"undefined in {undefined} of {resamples} resamples"
    return [float(boot.confidence_interval.low), float(boot.confidence_interval.high)], None


def estimate(statistic, resamples=RESAMPLES):
    """{value, n, ci[, reason]} of one judge's metric."""
    units = np.flatnonzero(statistic.mask)
    if len(units) == 0:
        return result(None, 0, reason=statistic.empty)
    try:
        value = float(statistic.compute(units))
    except Undefined as why:
        return result(None, len(units), reason=str(why))
    interval, reason = bootstrap_interval(statistic.compute, units, resamples)
    return result(value, len(units), interval, reason)


def difference(first, second, resamples=RESAMPLES):
    """{value, n, ci[, reason]} of second's metric minus first's, all rows (or pairs) resampled together, each judge's
    metric on its own units of the resample; n: the units both metrics are computed on."""
    units = np.arange(len(first.mask))
    shared = int((first.mask & second.mask).sum())
    try:
        value = float(second.on(units) - first.on(units))
    except Undefined as why:
        return result(None, shared, reason=str(why))
    interval, reason = bootstrap_interval(lambda sample: second.on(sample) - first.on(sample), units, resamples)
    return result(value, shared, interval, reason)


def map_tree(function, *trees):
    """`function` applied to the Statistic leaves of nested dicts of the same shape."""
    first = trees[0]
    if isinstance(first, Statistic):
        return function(*trees)
    return {key: map_tree(function, *(tree[key] for tree in trees)) for key in first}


# ------------------------------------------------------------------------------------------------ building blocks


def mean_of(values):
    def compute(units):
        if len(units) == 0:
            raise Undefined("no rows")
        return float(np.mean(values[units]))

    return compute


def mean_absolute_error(labels, predictions):
    def compute(units):
        if len(units) == 0:
            raise Undefined("no parsed verdict")
        return float(np.mean(np.abs(predictions[units] - labels[units])))

    return compute


def correlation(function, labels, predictions):
    """scipy's Pearson, Spearman or Kendall tau-b of the labels and predictions on the units."""

    def compute(units):
        if len(units) < 2:
            raise Undefined("fewer than 2 parsed verdicts")
        if np.unique(predictions[units]).size < 2:
            raise Undefined("constant predictions")
        if np.unique(labels[units]).size < 2:
            raise Undefined("one class only in the labels")
        return float(function(labels[units], predictions[units]).statistic)

    return compute


def everywhere(length):
    return np.ones(length, dtype=bool)


# ------------------------------------------------------------------------------------------------ pointwise


def rating_arrays(labels, verdicts, attribute):
    """(human ratings, the judge's ratings with NaN where it gave none) of one attribute."""
    human = np.array([label[attribute] for label in labels], dtype=float)
    judged = np.array([np.nan if verdict is None else verdict[attribute] for verdict in verdicts], dtype=float)
    return human, judged


def same_prompt_pairs(prompt_ids):
    """(first row, second row) of every two rows rating responses to the same prompt."""
    rows_of = {}
    for row, prompt_id in enumerate(prompt_ids):
        rows_of.setdefault(prompt_id, []).append(row)
    return np.array([pair for rows in rows_of.values() for pair in combinations(rows, 2)], dtype=int).reshape(-1, 2)


def pairwise_agreement(human, judged, pairs):
    """Does the judge order two responses to the same prompt as the human ratings do: over the pairs the humans rate
    differently (ties excluded); a judge tie or an unparsable verdict does not agree."""
    human_order = np.sign(human[pairs[:, 0]] - human[pairs[:, 1]])
    judge_order = np.sign(judged[pairs[:, 0]] - judged[pairs[:, 1]])  # NaN where either is unparsable
    agrees = (judge_order == human_order).astype(float)
    return Statistic(human_order != 0, mean_of(agrees), "no two responses to a prompt rated apart")


def pointwise_statistics(data, verdicts):
    """{parse_failure_rate, attributes: {attribute: {metric: Statistic}}} of one judge's verdicts (None: unparsable)."""
    parsed = np.array([verdict is not None for verdict in verdicts])
    pairs = same_prompt_pairs(data.prompt_ids)
    attributes = {}
    for attribute in data.attributes:
        human, judged = rating_arrays(data.labels, verdicts, attribute)
        error = np.abs(judged - human)  # NaN where unparsable: compares False below
        attributes[attribute] = {
            "exact_accuracy": Statistic(everywhere(len(human)), mean_of((error == 0).astype(float))),
            "within_1_accuracy": Statistic(everywhere(len(human)), mean_of((error <= 1).astype(float))),
            "mae": Statistic(parsed, mean_absolute_error(human, judged), NO_VERDICT),
            "pearson": Statistic(parsed, correlation(stats.pearsonr, human, judged), NO_VERDICT),
            "spearman": Statistic(parsed, correlation(stats.spearmanr, human, judged), NO_VERDICT),
            "kendall_tau": Statistic(parsed, correlation(stats.kendalltau, human, judged), NO_VERDICT),
            "pairwise_agreement": pairwise_agreement(human, judged, pairs),
        }
    return {
        "parse_failure_rate": Statistic(everywhere(len(parsed)), mean_of((~parsed).astype(float))),
        "attributes": attributes,
    }


# ------------------------------------------------------------------------------------------------ pairwise


def both_orders(pair_ids, orders):
    """(row shown in order 0, row shown in order 1) of every pair present in both orders."""
    row_of = {(pair_id, order): row for row, (pair_id, order) in enumerate(zip(pair_ids, orders))}
    pairs = [(row, row_of.get((pair_id, 1))) for (pair_id, order), row in row_of.items() if order == 0]
    return np.array([pair for pair in pairs if pair[1] is not None], dtype=int).reshape(-1, 2)


def pairwise_statistics(data, verdicts):
    """{parse_failure_rate, accuracy, accuracy_by_strength: {|strength|: ...}, position_consistency,
    both_orders_correct, prefer_first_rate} of one judge's letters (None: unparsable)."""
    rows = len(verdicts)
    parsed = np.array([verdict is not None for verdict in verdicts])
    correct = np.array([verdict == label for verdict, label in zip(verdicts, data.labels)], dtype=float)
    strengths = np.abs(np.array(data.strengths, dtype=int))
    first = np.array([verdict == "A" for verdict in verdicts], dtype=float)
    pairs = both_orders(data.pair_ids, data.orders)
    # the same response wins in both orders: "A" shown first, then "B" once swapped (or the reverse)
    consistent = np.array([verdicts[a] != verdicts[b] for a, b in pairs], dtype=float)
    both_correct = np.array([correct[a] * correct[b] for a, b in pairs], dtype=float)
    return {
        "parse_failure_rate": Statistic(everywhere(rows), mean_of((~parsed).astype(float))),
        "accuracy": Statistic(everywhere(rows), mean_of(correct)),
        "accuracy_by_strength": {
            str(strength): Statistic(strengths == strength, mean_of(correct)) for strength in sorted(set(strengths))
        },
        "position_consistency": Statistic(
            parsed[pairs].all(axis=1), mean_of(consistent), "no pair with both verdicts parsed"
        ),
        "both_orders_correct": Statistic(everywhere(len(pairs)), mean_of(both_correct)),
        "prefer_first_rate": Statistic(parsed, mean_of(first), NO_VERDICT),
    }


def statistics(data, verdicts):
    return (pointwise_statistics if data.task == "pointwise" else pairwise_statistics)(data, verdicts)


def confusion(data, verdicts):
    """{labels, predicted, counts}: rows of human labels, columns of verdicts, the last column "unparsable"."""
    if data.task == "pairwise":
        return confusion_matrix(list(data.labels), list(verdicts), ["A", "B"])
    return {
        attribute: confusion_matrix(
            [label[attribute] for label in data.labels],
            [None if verdict is None else verdict[attribute] for verdict in verdicts],
            [0, 1, 2, 3, 4],
        )
        for attribute in data.attributes
    }


def confusion_matrix(labels, predictions, classes):
    unparsable = "unparsable" if isinstance(classes[0], str) else -1
    predicted = [unparsable if prediction is None else prediction for prediction in predictions]
    table = stats.contingency.crosstab(labels, predicted, levels=(classes, [*classes, unparsable]))
    return {"labels": classes, "predicted": [*classes, "unparsable"], "counts": table.count.tolist()}

"""One evaluation: every judge completes every row not yet in OUTPUT/predictions.jsonl (appended as each arrives),
then metrics.json, the plot, and the "Judge evaluation" section of each evaluated output directory's model card."""

from pathlib import Path

from tqdm.auto import tqdm

from judge_sft.errors import JudgeSFTError
from judge_sft.evaluation.card_section import save_for_card
from judge_sft.evaluation.metrics import RESAMPLES
from judge_sft.evaluation.plot import plot_evaluation
from judge_sft.evaluation.predictions import PredictionsLog, prediction
from judge_sft.evaluation.report import metrics_document, write_metrics
from judge_sft.files import cannot_write
from judge_sft.train.saved_recipe import find_recipe


def check_labels(generators):
    labels = [generator.label for generator in generators]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise JudgeSFTError(f"{repeated[0]}: named twice; evaluate each model once")


def open_output(output_dir, data):
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise JudgeSFTError(f"{output_dir}: exists and is not a directory")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise cannot_write(output_dir, error)
    return PredictionsLog(output_dir, data)


def complete_rows(generator, data, log):
    """`generator`'s completions of the rows it has not done yet, each logged as it arrives."""
    done = log.done(generator.label)
    pending = {row: data.prompts[row] for row in range(len(data)) if row not in done}
    with tqdm(total=len(data), initial=len(data) - len(pending), unit="row", desc=generator.label) as progress:
        for row, completion in generator.complete(list(pending.items())):
            if row not in pending:
                raise JudgeSFTError(f"{generator.label}: completed row {row}, which was not asked for")
            del pending[row]
            log.append(prediction(data, generator.label, row, completion))
            progress.update()
    if pending:
        raise JudgeSFTError(f"{generator.label}: no completion for row {min(pending)} ({len(pending)} rows missing)")


def evaluate(data, generators, output_dir, resamples=RESAMPLES):
    """Evaluate the judges on the same rows (the first is the one the others are compared with); return metrics.json's
    content."""
    check_labels(generators)
    log = open_output(output_dir, data)
    for generator in generators:
        complete_rows(generator, data, log)
    verdicts = {
        generator.label: [log.done(generator.label)[row]["verdict"] for row in range(len(data))]
        for generator in generators
    }
    document = metrics_document(data, verdicts, resamples)
    write_metrics(output_dir, document)
    plot_path = plot_evaluation(document, output_dir)
    for generator in generators:
        folder = getattr(generator, "model_path", None)
        if folder is not None and Path(folder).is_dir() and find_recipe(folder):
            update_model_card(folder, document, generator.label, plot_path)
    return document


def update_model_card(folder, document, model, plot_path):
    from judge_sft.hub.card import write_model_card

    save_for_card(folder, document, model, plot_path)
    write_model_card(folder)

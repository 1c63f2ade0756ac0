"""A `model_name_or_path` that names nothing readable, through the real entry points: one line saying what is missing
(the local directory, or a Hub model neither cached nor reachable), fast, and `skip_doctor` suggested only for what it
can skip. The shipped recipes' models plan offline from their bundled config.json."""

import hashlib
import json
import time

import pytest
from conftest import REPO, free_port, tiny_recipe

from judge_sft import cli
from judge_sft.errors import JudgeSFTError
from judge_sft.planning.doctor import check_before_training
from judge_sft.train.arguments import parse_recipe
from judge_sft.train.model_config import KNOWN_MODELS, KNOWN_MODELS_DIR

pytestmark = pytest.mark.usefixtures("quiet_imports")

# sha256 of config.json as published on the Hub at KNOWN_MODELS' revisions, as public model manifests pin them (the
# 14B file is 728 bytes); docs/errors.md says where the bundled files and these values come from.
PUBLISHED_CONFIG_SHA256 = {
    "Qwen/Qwen3-32B": "97e295b63283935788fac5e4f8860862a56d4089538cafc93f0431f2ebe483bb",
    "Qwen/Qwen3-14B": "e73c3664ca09b10a673fef0c22e8a6b456201d49bd4713c9691f775720e8857a",
}


def run_command(capsys, *argv):
    code = cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def missing_model_recipe(tmp_path, small_data):
    return tiny_recipe(tmp_path, tmp_path / "no-such-model", *small_data)


def test_a_model_directory_that_does_not_exist_is_one_line_in_plan_and_inspect_data(
    capsys, tmp_path, small_data, missing_model_recipe
):
    """Not huggingface_hub's "Repo id must be in the form 'repo_name'..." about a path that is not a repo id."""
    missing = tmp_path / "no-such-model"
    assert run_command(capsys, "plan", missing_model_recipe, "--num-gpus", 2) == (
        1,
        "",
        f"judge-sft plan: error: {missing}: no such model directory\n",
    )
    assert run_command(capsys, "inspect-data", small_data[0], "--tokenizer", missing) == (
        1,
        "",
        f"judge-sft inspect-data: error: {missing}: no such model directory\n",
    )
    assert not (tmp_path / "out").exists()


def test_doctor_reports_a_missing_model_directory_as_its_tokenizer_failure(capsys, tmp_path, missing_model_recipe):
    code, out, err = run_command(capsys, "doctor", missing_model_recipe)
    assert (code, err) == (1, "")
    assert f"FAIL  tokenizer: {tmp_path / 'no-such-model'}: no such model directory" in out.splitlines()
    assert out.splitlines()[-1] == "doctor: 3 passed, 0 warnings, 1 failed"  # attention and the two data files pass


def test_a_hub_id_neither_cached_nor_reachable_offline_is_one_line(capsys, tmp_path, small_data):
    recipe = tiny_recipe(tmp_path, "judge-sft-test/no-such-model", *small_data)
    assert run_command(capsys, "plan", recipe, "--num-gpus", 2) == (
        1,
        "",
        "judge-sft plan: error: judge-sft-test/no-such-model: no such local directory, and not in the Hub cache "
        "(HF_HUB_OFFLINE is set)\n",
    )


def test_an_unreachable_hub_fails_in_seconds_without_retries(capsys, tmp_path, small_data, monkeypatch):
    """huggingface_hub retries a failed download five times (~25 s and more); the check asks once."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there: every connection is refused at once
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", closed + "/{repo_id}/resolve/{revision}/{filename}")
    recipe = tiny_recipe(tmp_path, "judge-sft-test/no-such-model", *small_data)

    started = time.monotonic()
    code, out, err = run_command(capsys, "plan", recipe, "--num-gpus", 2)
    assert time.monotonic() - started < 5
    assert (code, out) == (1, "") and err.count("\n") == 1
    assert err.startswith(
        "judge-sft plan: error: judge-sft-test/no-such-model: no such local directory, and not in the Hub cache; "
        "the Hub is not reachable ("
    )


@pytest.mark.parametrize("name", sorted(KNOWN_MODELS))
def test_bundled_configs_are_the_published_files_byte_for_byte(name):
    config = KNOWN_MODELS_DIR / name.replace("/", "--") / "config.json"
    assert hashlib.sha256(config.read_bytes()).hexdigest() == PUBLISHED_CONFIG_SHA256[name]


@pytest.mark.parametrize(
    "recipe, layers, heads, intermediate",
    [("qwen3_32b.yaml", 64, 64, 25600), ("qwen3_14b.yaml", 40, 40, 17408)],
)
def test_the_shipped_recipes_plan_offline_from_their_bundled_config(capsys, recipe, layers, heads, intermediate):
    """`judge-sft plan recipes/qwen3_32b.yaml --num-gpus 8` with no Hub (HF_HUB_OFFLINE, empty cache for it)."""
    code, out, err = run_command(capsys, "plan", REPO / "recipes" / recipe, "--num-gpus", 8, "--json")
    assert (code, err) == (0, "")
    hidden, kv, vocab = 5120, 8 * 128, 151936  # hidden size, key/value width, vocabulary: the same in both
    query = heads * 128
    per_layer = hidden * query + 2 * hidden * kv + query * hidden + 3 * hidden * intermediate + 2 * hidden + 2 * 128
    assert json.loads(out)["params"] == 2 * vocab * hidden + layers * per_layer + hidden


def test_doctor_suggests_skip_doctor_only_for_failures_training_could_survive(tmp_path, tiny_model_dir, small_data):
    template = tmp_path / "no_markers.jinja"
    template.write_text("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")
    unskippable = tiny_recipe(tmp_path, tiny_model_dir, *small_data, chat_template_path=str(template))
    with pytest.raises(JudgeSFTError) as error:
        check_before_training(*parse_recipe([str(unskippable)], for_launch=False))
    assert str(error.value) == (
        "doctor: chat template: the tokenizer's chat template has no {% generation %} markers, so assistant tokens "
        "cannot be masked; set `chat_template_path` to a template that wraps assistant output in "
        "{% generation %}...{% endgeneration %}"
    )
    skippable = tiny_recipe(tmp_path, tiny_model_dir, *small_data, max_length=24)  # cuts most trained tokens
    with pytest.raises(JudgeSFTError) as error:
        check_before_training(*parse_recipe([str(skippable)], for_launch=False))
    assert str(error.value).startswith("doctor: truncation train.parquet: ")
    assert str(error.value).endswith("; fix it, or set `skip_doctor: true` in the recipe to train anyway")

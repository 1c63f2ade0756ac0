"""Bad input to prepare-data, validate-data, plot and plan through the real entry point (`judge_sft.cli.main`): each
failure is one exact line on stderr with its exit status, and writes nothing.

The output-directory cases mount real tmpfs filesystems (read-write, read-only, full) in a user and mount namespace
(`unshare -rm`), where the command runs as `python -m judge_sft.cli`; they skip where the kernel or the container does
not allow such namespaces.
"""

import gzip
import json
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, write_messages

import judge_sft.commands.plan  # noqa: F401 - imported here: transformers prints a line at import when WANDB_MODE=offline
from judge_sft.cli import main
from judge_sft.data.prepare import prompt_hash_fraction

SAMPLE = REPO / "judge_sft" / "data" / "helpsteer2_sample.jsonl"
SCORES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
OUTPUTS = ["stats.json", "train.parquet", "val.parquet"]


def record(prompt, response="An answer.", correctness=4):
    return {"prompt": prompt, "response": response, **dict.fromkeys(SCORES, 2), "correctness": correctness}


def jsonl(records):
    return "".join(json.dumps(item) + "\n" for item in records).encode()


def run(capsys, *argv):
    """(exit status, stdout, stderr) of the real CLI; argparse's own errors leave through SystemExit."""
    try:
        status = main([str(arg) for arg in argv])
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def tree(directory):
    """Every path under `directory` with its bytes (None for a folder)."""
    return {
        str(path.relative_to(directory)): path.read_bytes() if path.is_file() else None
        for path in sorted(directory.rglob("*"))
    }


def fails(capsys, tmp_path, *argv):
    """Run a command that must fail: (exit status, stderr), after checking that stdout is empty and nothing under
    tmp_path changed."""
    before = tree(tmp_path)
    status, out, err = run(capsys, *argv)
    assert out == ""
    assert tree(tmp_path) == before, "a failed command wrote something"
    return status, err


# ---------------------------------------------------------------------------------------------------- prepare-data


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_invalid_utf8_in_a_jsonl_string_names_the_line(tmp_path, capsys, suffix):
    payload = jsonl([record("Is 7 prime?"), record("cafe au lait?")]).replace(b"cafe", b"caf\xe9")
    data = tmp_path / f"train{suffix}"
    data.write_bytes(gzip.compress(payload) if suffix.endswith(".gz") else payload)
    status, err = fails(capsys, tmp_path, "prepare-data", "--input", data, "--output-dir", tmp_path / "out")
    assert (status, err) == (
        1,
        f"judge-sft prepare-data: error: {data} line 2: not valid UTF-8 (invalid continuation byte at byte 15)\n",
    )


def test_invalid_utf8_in_a_parquet_string_names_the_row_and_column(tmp_path, capsys):
    prompts = pa.array([b"Is 7 prime?", b"Is 9 prime?", b"caf\xe9 au lait?"]).view(pa.string())
    table = pa.table(
        {"prompt": prompts, "response": ["Yes.", "No.", "A drink."], **{name: [2, 4, 4] for name in SCORES}}
    )
    data = tmp_path / "train.parquet"
    pq.write_table(table, data)
    status, err = fails(capsys, tmp_path, "prepare-data", "--input", data, "--output-dir", tmp_path / "out")
    assert (status, err) == (
        1,
        f"judge-sft prepare-data: error: {data} row 2: prompt is not valid UTF-8 (invalid continuation byte at byte 3)\n",
    )


def test_filters_that_leave_no_train_row_say_what_each_removed(tmp_path, capsys):
    records = [record(f"Question {index}?", correctness=2) for index in range(3)] + [record("   ")]
    data = tmp_path / "train.jsonl"
    data.write_bytes(jsonl(records))
    output_dir = tmp_path / "new" / "nested" / "out"  # nothing of it may be left behind
    status, err = fails(capsys, tmp_path, "prepare-data", "--input", data, "--output-dir", output_dir)
    assert (status, err) == (
        1,
        "judge-sft prepare-data: error: no rows left for train.parquet: of 4 rows read, empty_text dropped 1, "
        "correctness<4 dropped 3; nothing written\n",
    )


def test_rows_that_all_hash_into_val_leave_no_train_row(tmp_path, capsys):
    prompts = [
        prompt for prompt in (f"Question {index}?" for index in range(100)) if prompt_hash_fraction(prompt) < 0.5
    ]
    data = tmp_path / "train.jsonl"
    data.write_bytes(jsonl([record(prompt) for prompt in prompts[:2]]))
    status, err = fails(
        capsys, tmp_path, "prepare-data", "--input", data, "--output-dir", tmp_path / "out", "--val-fraction", "0.5"
    )
    assert (status, err) == (
        1,
        "judge-sft prepare-data: error: no rows left for train.parquet: of 2 rows read, 2 went to val "
        "(prompt hash, fraction 0.5); nothing written\n",
    )


def test_an_empty_val_split_is_written_and_the_summary_says_to_leave_val_file_unset(tmp_path, capsys):
    data = tmp_path / "train.jsonl"
    data.write_bytes(jsonl([record("Is 7 prime?")]))
    status, out, err = run(
        capsys, "prepare-data", "--input", data, "--output-dir", tmp_path / "out", "--val-fraction", 0
    )
    assert (status, err) == (0, "")
    assert f"  val    0  {tmp_path / 'out' / 'val.parquet'} (empty: leave val_file unset)" in out.splitlines()


# ---------------------------------------------------------------------------------------------------- output on a mount


@pytest.fixture(scope="module")
def namespace(tmp_path_factory):
    """Runs a shell script as root of a new user and mount namespace, where it may mount tmpfs."""
    probe = tmp_path_factory.mktemp("probe")
    allowed = shutil.which("unshare") and shutil.which("mount")
    if allowed:
        command = ["unshare", "-rm", "mount", "-t", "tmpfs", "tmpfs", str(probe)]
        allowed = subprocess.run(command, capture_output=True).returncode == 0
    if not allowed:
        pytest.skip("no user and mount namespaces here (unshare -rm, mount -t tmpfs)")

    def run_script(script):
        return subprocess.run(
            ["unshare", "-rm", "bash", "-ec", script], capture_output=True, text=True, cwd=REPO, timeout=300
        )

    return run_script


def prepare_on_a_mount(namespace, mount_point, options, output_dir):
    """prepare-data of the bundled sample into `output_dir`, with a tmpfs mounted at `mount_point`:
    (exit status, stderr, the files on the mount afterwards)."""
    mount_point.mkdir()
    result = namespace(
        f"mount -t tmpfs -o {options} tmpfs {mount_point}\n"
        f"status=0; {sys.executable} -m judge_sft.cli prepare-data --input {SAMPLE} --output-dir {output_dir} "
        ">/dev/null || status=$?\n"
        f"echo $status; cd {mount_point}; find . -mindepth 1 | sort\n"
    )
    status, *files = result.stdout.splitlines()
    return int(status), result.stderr, files


def test_output_dir_that_is_a_mount_of_its_own_gets_the_outputs_and_no_staging_left(namespace, tmp_path):
    volume = tmp_path / "volume"
    status, err, files = prepare_on_a_mount(namespace, volume, "rw", volume)
    assert (status, err) == (0, "")
    assert files == [f"./{name}" for name in OUTPUTS]
    assert tree(tmp_path) == {"volume": None}  # nothing staged beside the mount


@pytest.mark.parametrize("below", [False, True])
def test_read_only_mount_is_one_line_and_nothing_is_written(namespace, tmp_path, below):
    volume = tmp_path / "volume"
    output_dir = volume / "out" if below else volume
    status, err, files = prepare_on_a_mount(namespace, volume, "ro", output_dir)
    assert (status, err, files) == (
        1,
        f"judge-sft prepare-data: error: {output_dir}: cannot write output there (Read-only file system)\n",
        [],
    )
    assert tree(tmp_path) == {"volume": None}


def test_full_disk_is_one_line_and_leaves_nothing(namespace, tmp_path):
    volume = tmp_path / "volume"
    output_dir = volume / "new" / "out"
    status, err, files = prepare_on_a_mount(namespace, volume, "size=16k", output_dir)
    assert (status, files) == (1, [])
    assert err.startswith(f"judge-sft prepare-data: error: {output_dir}: cannot write output there (")
    assert "No space left on device" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------------- validate-data


def test_validate_data_on_a_directory_says_so(tmp_path, capsys):
    status, err = fails(capsys, tmp_path, "validate-data", tmp_path)
    assert (status, err) == (
        1,
        f"judge-sft validate-data: error: {tmp_path}: is a directory, expected a messages Parquet file\n",
    )


def test_a_file_without_rows_is_an_error_in_validate_data_as_in_doctor(tmp_path, capsys):
    from judge_sft.planning.doctor import FAIL, check_data

    empty = write_messages(
        tmp_path / "train.parquet", pa.array([], pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])))
    )
    status, err = fails(capsys, tmp_path, "validate-data", empty)
    assert (status, err) == (1, f"judge-sft validate-data: error: {empty}: no rows\n")
    check, _ = check_data(empty, "messages")
    assert (check.status, check.message) == (FAIL, f"{empty}: no rows")


def test_invalid_utf8_in_a_messages_file_names_the_row(tmp_path, capsys):
    contents = pa.array([b"Is 7 prime?", b"Yes.", b"Is 9 prime?", b"No, caf\xe9."]).view(pa.string())
    roles = pa.array(["user", "assistant"] * 2)
    messages = pa.StructArray.from_arrays([roles, contents], names=["role", "content"])
    data = tmp_path / "mine.parquet"
    pq.write_table(pa.table({"messages": pa.ListArray.from_arrays(pa.array([0, 2, 4], pa.int32()), messages)}), data)
    status, err = fails(capsys, tmp_path, "validate-data", data)
    assert (status, err) == (
        1,
        f"judge-sft validate-data: error: {data} row 1: not valid UTF-8 (invalid continuation byte)\n",
    )


# ---------------------------------------------------------------------------------------------------- plot


def test_plot_on_a_file_says_it_is_a_file(tmp_path, capsys):
    state = tmp_path / "trainer_state.json"
    state.write_text(json.dumps({"log_history": [{"step": 1, "loss": 1.0}]}))
    status, err = fails(capsys, tmp_path, "plot", state)
    assert (status, err) == (
        1,
        f"judge-sft plot: error: {state}: is a file, expected a run's output_dir or one of its checkpoint-* folders\n",
    )


# ---------------------------------------------------------------------------------------------------- plan


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--gpu-memory-gb", "-1", "a positive number"),
        ("--gpu-memory-gb", "0", "a positive number"),
        ("--cpu-memory-gb", "-5", "a positive number"),
        ("--peak-tflops", "-1", "a positive number"),
        ("--peak-tflops", "inf", "a positive number"),
        ("--mfu", "0", "a fraction in (0, 1]"),
        ("--mfu", "5", "a fraction in (0, 1]"),
        ("--mfu", "nan", "a fraction in (0, 1]"),
        ("--num-gpus", "0", "a positive integer"),
        ("--num-nodes", "-2", "a positive integer"),
    ],
)
@pytest.mark.parametrize("after_recipe", [False, True])
def test_out_of_range_plan_flags_are_one_line_exit_1_before_or_after_the_recipe(
    tmp_path, capsys, flag, value, expected, after_recipe
):
    recipe = REPO / "recipes" / "tiny_cpu.yaml"
    flags = ["--num-gpus", "2", flag, value] if flag != "--num-gpus" else [flag, value]
    argv = ["plan", recipe, *flags] if after_recipe else ["plan", *flags, recipe]
    status, err = fails(capsys, tmp_path, *argv)
    assert (status, err) == (1, f"judge-sft plan: error: argument {flag}: expected {expected}, got {value}\n")


def test_a_word_for_a_plan_number_is_quoted(tmp_path, capsys):
    status, err = fails(
        capsys, tmp_path, "plan", REPO / "recipes" / "tiny_cpu.yaml", "--num-gpus", "2", "--mfu", "high"
    )
    assert (status, err) == (1, "judge-sft plan: error: argument --mfu: expected a fraction in (0, 1], got 'high'\n")

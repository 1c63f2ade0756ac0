"""`judge-sft push` with a bad repo id, a rejected token or no Hub: one exact line, exit 1, and the directory as it
was (no card rewritten, no loss curve drawn). The real client (`python -m judge_sft.cli push`) against the loopback Hub
(hub_server.py), and a good push of the same directory: its new card is the one uploaded.
"""

import json
import os
import secrets
import socket
import subprocess
import sys

import pytest
from conftest import REPO
from hub_server import FakeHub

TOKEN = "hf_judgesfterrors" + secrets.token_hex(12)
OLD_CARD = "# my own notes\n"


@pytest.fixture(scope="module")
def hub():
    with FakeHub(TOKEN) as server:
        yield server


@pytest.fixture
def output_dir(tmp_path):
    """What check_pushable accepts, with a README.md and a trainer_state.json that a card would replace and plot."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    (folder / "tokenizer_config.json").write_text("{}")
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": [{"step": 1, "loss": 1.5}]}))
    (folder / "README.md").write_text(OLD_CARD)
    return folder


def tree(directory):
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*"))}


def push(folder, repo_id, env, tmp_path):
    home = tmp_path / "hf_home"
    result = subprocess.run(
        [sys.executable, "-m", "judge_sft.cli", "push", str(folder), "--repo-id", repo_id],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", **env},
        cwd=REPO,
        timeout=300,
    )
    return result.returncode, result.stdout, result.stderr


def closed_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_bad_repo_id_fails_before_the_hub_and_leaves_the_directory_as_it_was(hub, output_dir, tmp_path):
    before, requests = tree(output_dir), len(hub.requests)
    status, out, err = push(output_dir, "bad repo id", {"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN}, tmp_path)
    assert (status, out, err) == (
        1,
        "",
        "judge-sft push: error: 'bad repo id' is not a valid Hub repo id: Repo id must use alphanumeric chars, '-', "
        "'_' or '.'. The name cannot start or end with '-' or '.' and the maximum length is 96: 'bad repo id'.\n",
    )
    assert tree(output_dir) == before
    assert len(hub.requests) == requests  # the id was refused before any request


def test_rejected_token_leaves_the_directory_as_it_was(hub, output_dir, tmp_path):
    before = tree(output_dir)
    status, out, err = push(output_dir, "judge-org/refused", {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_wrong"}, tmp_path)
    assert (status, out) == (1, "")
    assert err.startswith("judge-sft push: error: Hub repo judge-org/refused: cannot create or reach it: ")
    assert err.endswith("; check the token: HF_TOKEN, or `hf auth login`, with write access to the repo\n")
    assert err.count("\n") == 1
    assert tree(output_dir) == before and "judge-org/refused" not in hub.repos


def test_unreachable_hub_leaves_the_directory_as_it_was(output_dir, tmp_path):
    before = tree(output_dir)
    status, out, err = push(output_dir, "judge-org/x", {"HF_ENDPOINT": closed_port_url(), "HF_TOKEN": TOKEN}, tmp_path)
    assert (status, out) == (1, "")
    assert err.startswith("judge-sft push: error: Hub repo judge-org/x: cannot create or reach it: ")
    assert "Connection refused" in err and err.count("\n") == 1
    assert tree(output_dir) == before


def test_good_push_writes_the_card_then_uploads_it(hub, output_dir, tmp_path):
    status, out, err = push(output_dir, "tiny-judge", {"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN}, tmp_path)
    assert status == 0, err
    repo_id = f"{hub.namespace}/tiny-judge"  # a bare NAME lands under the token's account
    card = (output_dir / "README.md").read_text()
    assert "\n# tiny-judge\n" in card and "| final train loss | 1.5000 | 1 |" in card
    assert (output_dir / "loss_curve.png").is_file()
    files = hub.files(repo_id)
    assert files["README.md"].decode() == card and files["model.safetensors"] == b"weights"
    assert out.startswith(f"pushed {output_dir} to {hub.url}/{repo_id}/commit/")

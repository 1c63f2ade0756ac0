"""EndpointGenerator (judge_sft/evaluation/endpoint.py) against a real OpenAI-compatible server, `transformers serve`
on loopback (tests/serve_server.py), and against loopback stand-ins that fail on purpose (503s, 400, nothing
listening). The tests that start, kill and restart their own servers are marked `launch`."""

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import conversation, free_port
from judge_files import write_pairwise
from serve_server import TransformersServe, build_lively_tiny_model

from judge_sft.cli import main as cli_main
from judge_sft.errors import JudgeSFTError
from judge_sft.evaluation.endpoint import EndpointGenerator

NEW_TOKENS = 12
PROMPTS = [conversation(index, 1 + index % 3)[:-1] for index in range(6)]  # each row's messages before its answer


@pytest.fixture(scope="module")
def lively_model_dir(tmp_path_factory):
    return build_lively_tiny_model(tmp_path_factory.mktemp("lively_tiny_model"))


@pytest.fixture(scope="module")
def served(lively_model_dir, tmp_path_factory):
    with TransformersServe(lively_model_dir, log_dir=tmp_path_factory.mktemp("serve")) as server:
        yield server


def greedy_reference(model_dir, prompts, **template_options):
    """What transformers' own greedy `generate` writes for each prompt, rendered by the model's chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    completions = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template(
            prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True, **template_options
        )
        with torch.no_grad():
            output = model.generate(**ids, max_new_tokens=NEW_TOKENS, do_sample=False, top_p=None, top_k=None)
        completions.append(tokenizer.decode(output[0, ids["input_ids"].shape[1] :], skip_special_tokens=True))
    return completions


@pytest.mark.parametrize("template_options", [{}, {"enable_thinking": False}], ids=["template default", "no thinking"])
def test_endpoint_completions_equal_greedy_generate_on_the_prompts_the_chat_template_renders(
    served, lively_model_dir, template_options
):
    generator = EndpointGenerator(
        served.base_url,
        str(lively_model_dir),
        concurrency=3,
        max_new_tokens=NEW_TOKENS,
        chat_template_kwargs=template_options or None,
    )
    completions = dict(generator.complete(enumerate(PROMPTS)))
    reference = greedy_reference(lively_model_dir, PROMPTS, **template_options)
    assert sorted(completions) == list(range(len(PROMPTS)))
    # transformers serve's Qwen3 response parser trims the whitespace around the message (vLLM does not)
    assert [completions[row] for row in range(len(PROMPTS))] == [text.strip() for text in reference]
    assert len(set(reference)) == len(PROMPTS) and all(text.strip() for text in reference)


class FlakyServer:
    """A loopback chat-completions stand-in: answers `failures` (status, body) first, then a completion echoing the
    last message; records each request's arrival time."""

    def __init__(self, failures):
        self.failures, self.arrivals, self.bodies = list(failures), [], []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.arrivals.append(time.monotonic())
                stub.bodies.append(body)
                status, payload = stub.failures.pop(0) if stub.failures else (200, completion(body))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def completion(body):
    echo = f"verdict for: {body['messages'][-1]['content']}"
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": echo}, "finish_reason": "stop"}]}


def test_a_request_answered_503_twice_is_retried_with_doubling_backoff_and_then_completes():
    unavailable = (503, {"detail": "overloaded"})
    with FlakyServer([unavailable, unavailable]) as server:
        generator = EndpointGenerator(server.base_url, "judge", retries=3, backoff=0.2, max_new_tokens=7)
        assert list(generator.complete([(4, PROMPTS[0])])) == [(4, f"verdict for: {PROMPTS[0][-1]['content']}")]
    first, second, third = server.arrivals
    assert 0.2 <= second - first < 0.35 and 0.4 <= third - second < 0.55
    assert server.bodies[0] == {
        "model": "judge",
        "messages": PROMPTS[0],
        "temperature": 0.0,
        "seed": 0,
        "max_tokens": 7,
    }


def test_a_400_is_not_retried_and_stops_the_run_with_the_servers_message():
    with FlakyServer([(400, {"detail": "max_tokens is too large"})]) as server:
        generator = EndpointGenerator(server.base_url, "judge", retries=3, backoff=0.01)
        with pytest.raises(JudgeSFTError) as raised:
            list(generator.complete([(2, PROMPTS[0])]))
    assert len(server.arrivals) == 1
    assert str(raised.value) == (
        f"{server.base_url}/chat/completions: row 2 refused with HTTP 400: max_tokens is too large"
    )


def test_a_server_still_503_after_the_retries_is_one_line_naming_the_url():
    unavailable = (503, {"detail": "overloaded"})
    with FlakyServer([unavailable] * 3) as server:
        generator = EndpointGenerator(server.base_url, "judge", retries=2, backoff=0.01)
        with pytest.raises(JudgeSFTError) as raised:
            list(generator.complete([(0, PROMPTS[0])]))
    assert len(server.arrivals) == 3
    assert str(raised.value) == (
        f"{server.base_url}/chat/completions: no answer for row 0 after 3 tries "
        '(HTTP 503: {"detail": "overloaded"}); is the server up at --base-url?'
    )


def test_an_unreachable_server_is_one_line_naming_the_url_after_the_retries():
    base_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    generator = EndpointGenerator(base_url, "judge", retries=2, backoff=0.01)
    with pytest.raises(JudgeSFTError) as raised:
        list(generator.complete(enumerate(PROMPTS)))
    assert str(raised.value) == (
        f"{base_url}/chat/completions: no answer for row 0 after 3 tries "
        "(ConnectError: [Errno 111] Connection refused); is the server up at --base-url?"
    )


def test_a_base_url_without_its_scheme_is_refused_before_any_request():
    with pytest.raises(JudgeSFTError) as raised:
        EndpointGenerator("localhost:8000/v1", "judge")
    assert str(raised.value) == "--base-url localhost:8000/v1: expected http://HOST:PORT/v1 (or https://)"


@pytest.mark.launch  # starts and kills its own servers (minutes on a busy machine)
def test_a_server_killed_mid_run_yields_every_row_completed_before_then_one_line(lively_model_dir, tmp_path):
    reference = dict(enumerate(greedy_reference(lively_model_dir, PROMPTS)))
    completed = []
    with TransformersServe(lively_model_dir, log_dir=tmp_path) as server:
        generator = EndpointGenerator(
            server.base_url, str(lively_model_dir), concurrency=2, retries=2, backoff=0.05, max_new_tokens=NEW_TOKENS
        )
        with pytest.raises(JudgeSFTError) as raised:
            for row, text in generator.complete(enumerate(PROMPTS)):
                completed.append((row, text))
                if len(completed) == 3:
                    server.kill()
    assert len(completed) >= 3 and len({row for row, _ in completed}) == len(completed)
    assert all(text == reference[row].strip() for row, text in completed)
    failed = int(str(raised.value).split("no answer for row ")[1].split()[0])
    assert failed not in dict(completed)
    assert str(raised.value) == (
        f"{server.base_url}/chat/completions: no answer for row {failed} after 3 tries "
        "(ConnectError: [Errno 111] Connection refused); is the server up at --base-url?"
    )


# ---------------------------------------------------------------------------------------------------- judge-sft evaluate


def evaluate_command(data, output, *judge):
    return [*judge, "--data", data, "--output", output, "--max-new-tokens", NEW_TOKENS]


def run_cli(capsys, argv):
    status = cli_main([str(arg) for arg in argv])
    return status, capsys.readouterr().err


def by_row(path):
    return {record["row"]: record for record in map(json.loads, path.read_text().splitlines())}


def test_evaluate_through_the_server_gives_the_local_completions_and_metrics(
    capsys, served, lively_model_dir, tmp_path
):
    data = write_pairwise(tmp_path / "pairwise.parquet", [-3, 2, -1, 1])
    local, endpoint = tmp_path / "local", tmp_path / "endpoint"
    status, err = run_cli(capsys, ["evaluate", *evaluate_command(data, local, lively_model_dir)])
    assert status == 0, err
    server_judge = ["--base-url", served.base_url, "--model", lively_model_dir, "--concurrency", 4]
    status, err = run_cli(capsys, ["evaluate", *evaluate_command(data, endpoint, *server_judge)])
    assert status == 0, err
    local_rows, endpoint_rows = by_row(local / "predictions.jsonl"), by_row(endpoint / "predictions.jsonl")
    assert sorted(local_rows) == sorted(endpoint_rows) == list(range(8))
    for row, record in local_rows.items():  # the server trims the whitespace around the message (see above)
        assert endpoint_rows[row]["completion"] == record["completion"].strip()
        assert {key: value for key, value in endpoint_rows[row].items() if key != "completion"} == {
            key: value for key, value in record.items() if key != "completion"
        }
    local_metrics = json.loads((local / "metrics.json").read_text())
    endpoint_metrics = json.loads((endpoint / "metrics.json").read_text())
    assert local_metrics == endpoint_metrics and str(lively_model_dir) in local_metrics["metrics"]


@pytest.mark.launch  # starts and kills its own servers (minutes on a busy machine)
def test_a_server_killed_mid_evaluation_then_restarted_the_rerun_completes_every_row_exactly_once(
    lively_model_dir, tmp_path
):
    data = write_pairwise(tmp_path / "pairwise.parquet", [-3, 2, -1, 1, 3, -2])  # 12 rows
    output = tmp_path / "eval"
    with TransformersServe(lively_model_dir, log_dir=tmp_path) as server:
        server_judge = ["--base-url", server.base_url, "--model", lively_model_dir, "--concurrency", 2]
        command = [sys.executable, "-m", "judge_sft.cli", "evaluate", "--retries", "1"]
        command += [str(arg) for arg in evaluate_command(data, output, *server_judge)]
        evaluation = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        log = output / "predictions.jsonl"
        deadline = time.monotonic() + 300
        while not (log.is_file() and len(log.read_text().splitlines()) >= 4) and time.monotonic() < deadline:
            time.sleep(0.2)
        server.kill()
        _, err = evaluation.communicate(timeout=120)
    assert evaluation.returncode == 1
    done_before = by_row(log)
    assert 4 <= len(done_before) < 12 and len(log.read_text().splitlines()) == len(done_before)
    failed = min(set(range(12)) - set(done_before))
    assert err.splitlines()[-1] == (
        f"judge-sft evaluate: error: {server.base_url}/chat/completions: no answer for row {failed} after 2 tries "
        "(ConnectError: [Errno 111] Connection refused); is the server up at --base-url?"
    )
    with TransformersServe(lively_model_dir, log_dir=tmp_path, port=server.port):
        rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    rows = [record["row"] for record in map(json.loads, log.read_text().splitlines())]
    assert sorted(rows) == list(range(12))  # every row exactly once
    assert {row: by_row(log)[row] for row in done_before} == done_before  # the rows done before were kept as they were
    assert json.loads((output / "metrics.json").read_text())["rows"] == 12

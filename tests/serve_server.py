"""`transformers serve` (the `transformers[serving]` extra) serving a local model directory on loopback, offline: the
real OpenAI-compatible server the endpoint tests talk to. The model is preloaded before the server listens, so
`/health` answering means requests are served. Without `--continuous-batching` it generates one request at a time;
with it on CPU, give `--cb-num-blocks` (and `--cb-max-batch-tokens`): by default it sizes its paged KV cache from the
machine's memory (14 GB resident for the tiny model, and no answer within minutes on the 2-core test machine)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import free_port

SMALL_CB_CACHE = [
    "--continuous-batching",
    "--cb-num-blocks",
    "64",
    "--cb-block-size",
    "32",
    "--cb-max-batch-tokens",
    "512",
]


class TransformersServe:
    def __init__(self, model_dir, *options, log_dir, port=None, ready_timeout=180):
        self.model_dir, self.options, self.ready_timeout = str(model_dir), list(options), ready_timeout
        self.port = port or free_port()
        self.log = Path(log_dir) / f"transformers-serve-{self.port}.log"
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.process = None

    def __enter__(self):
        command = [sys.executable, "-m", "transformers.cli.transformers", "serve", self.model_dir]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu", *self.options]
        # offline, and no PyPI version check at CLI start (huggingface_hub's check_cli_update)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def wait_until_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"transformers serve not ready after {self.ready_timeout} s:\n{self.log_tail()}")

    def kill(self):
        """Dies at once, as a crashed server does (no graceful shutdown)."""
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self):
        return self.log.read_text(errors="replace")[-4000:]


def build_lively_tiny_model(output_dir):
    """The tiny Qwen3 (judge_sft/tiny_model.py) with its layers' matrices redrawn at std 0.3: at the default init its
    tied embeddings dominate and greedy decoding repeats the prompt's last token ("\\n" forever); redrawn, every prompt
    gets its own string of varied tokens, so two completions that match really do match."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from judge_sft.tiny_model import build_tiny_model

    build_tiny_model(output_dir)
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.model.layers.parameters():
            if parameter.dim() == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    model.save_pretrained(output_dir)
    AutoTokenizer.from_pretrained(output_dir).save_pretrained(output_dir)
    return Path(output_dir)

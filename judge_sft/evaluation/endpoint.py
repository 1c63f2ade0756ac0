"""A judge behind any OpenAI-compatible server (vLLM, SGLang, TGI, `transformers serve`): concurrent greedy
chat-completion requests, the server rendering each prompt with the chat template it serves. A request is retried with
exponential backoff on a connection error, a timeout, 429 or 5xx; any other answer, or a server still failing after
the retries, stops the run with one line naming the URL, once the requests in flight have come back, so every row
completed before is yielded (and kept by the predictions log). docs/evaluation.md#through-a-server---base-url shows the servers."""

import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import httpx

from judge_sft.errors import JudgeSFTError, one_line

RETRIED_STATUSES = {429, 500, 502, 503, 504}
SEED = 0  # sent for servers that sample even at temperature 0 (or seed their kernels)


class RequestFailed(Exception):
    """One row's request gave up: the JudgeSFTError line to raise once the requests in flight are back."""

    def __init__(self, row, message):
        super().__init__(message)
        self.row = row


class EndpointGenerator:
    def __init__(
        self,
        base_url,
        model,
        concurrency=8,
        timeout=300.0,
        retries=3,
        max_new_tokens=1024,
        label=None,
        chat_template_kwargs=None,
        backoff=1.0,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise JudgeSFTError(f"--base-url {base_url}: expected http://HOST:PORT/v1 (or https://)")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.concurrency, self.retries = model, concurrency, retries
        self.timeout, self.max_new_tokens, self.backoff = timeout, max_new_tokens, backoff
        self.chat_template_kwargs = chat_template_kwargs  # e.g. {"enable_thinking": False}; None: the template's own
        self.label = label or model  # not the URL: a rerun against the server restarted elsewhere resumes

    def body(self, messages):
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": 0.0,
            "seed": SEED,
            "max_tokens": self.max_new_tokens,
        }
        if self.chat_template_kwargs is not None:
            body["chat_template_kwargs"] = self.chat_template_kwargs
        return body

    def complete(self, requests):
        """(row, completion) as each request comes back; at most `concurrency` requests in flight. After a request
        gives up, none is sent; those in flight finish (with their retries), and the failure of the lowest row is
        raised: the same line whichever thread failed first."""
        requests, failures = iter(requests), []
        with httpx.Client(timeout=httpx.Timeout(self.timeout)) as client, ThreadPoolExecutor(self.concurrency) as pool:
            in_flight = set()
            while True:
                while not failures and len(in_flight) < self.concurrency and (request := next(requests, None)):
                    in_flight.add(pool.submit(self.request, client, *request))
                if not in_flight:
                    break
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        yield future.result()
                    except RequestFailed as failure:
                        failures.append(failure)
        if failures:
            raise JudgeSFTError(str(min(failures, key=lambda failure: failure.row)))

    def request(self, client, row, messages):
        for tries in range(1, self.retries + 2):
            if tries > 1:
                time.sleep(self.backoff * 2 ** (tries - 2))
            try:
                response = client.post(self.url, json=self.body(messages))
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {first_line(str(error))}"
                continue
            if response.status_code in RETRIED_STATUSES:
                problem = f"HTTP {response.status_code}: {first_line(response.text)}"
                continue
            if response.status_code != 200:
                hint = " (does --base-url end in /v1?)" if response.status_code == 404 else ""
                raise RequestFailed(
                    row, f"{self.url}: row {row} refused with HTTP {response.status_code}{hint}: {detail(response)}"
                )
            return row, completion_text(self.url, row, response)
        raise RequestFailed(
            row, f"{self.url}: no answer for row {row} after {tries} tries ({problem}); is the server up at --base-url?"
        )


def first_line(text):
    return one_line(Exception(text)) if text.strip() else "no message"


def detail(response):
    """The server's own error message: FastAPI's `detail`, OpenAI's `error.message`, vLLM's `message`."""
    try:
        message = response.json()
    except ValueError:
        return first_line(response.text)
    if isinstance(message, dict):
        message = message.get("detail") or message.get("error") or message.get("message") or message
        if isinstance(message, dict):
            message = message.get("message", message)
    return first_line(str(message))


def completion_text(url, row, response):
    """The assistant message's text. A server with a reasoning parser (vLLM's --reasoning-parser, `transformers serve`
    for Qwen3) returns the <think> block apart: it is put back, as the model wrote it, for the verdict parser to drop."""
    try:
        message = response.json()["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise RequestFailed(
            row, f"{url}: row {row}: not a chat completion ({one_line(error)}): {response.text[:200]!r}"
        )
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    return f"<think>\n{reasoning}\n</think>\n\n{content}" if reasoning else content

"""A judge run here: batched greedy `generate` with left padding, bf16 on GPU (spread over every visible GPU),
float32 on CPU. Prompts are rendered by data/tokenization.py's `tokenize_prompt`, through the chat template saved
with the model, exactly as training rendered the same rows."""

from judge_sft.data.tokenization import tokenize_prompt
from judge_sft.errors import JudgeSFTError
from judge_sft.train.attention import this_device
from judge_sft.train.chat_templates import load_tokenizer


def judge_tokenizer(model):
    """The model's tokenizer, refused in one line when it has no chat template to render prompts with."""
    tokenizer = load_tokenizer(model)
    if not tokenizer.chat_template:
        raise JudgeSFTError(
            f"{model}: has no chat template, so prompts cannot be rendered as training rendered them; evaluate a "
            "judge-sft output or checkpoint directory (it saves chat_template.jinja) or a model that ships one"
        )
    return tokenizer


class LocalGenerator:
    """The tokenizer is loaded (and checked) at once; the model only when a row is left to complete, and released
    after, so several models are evaluated one after another, never held together."""

    def __init__(self, model, batch_size=8, max_new_tokens=1024):
        self.label = str(model)
        self.model_path = model
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.tokenizer = judge_tokenizer(model)

    def prompt_ids(self, messages):
        return tokenize_prompt(messages, self.tokenizer)

    def complete(self, requests):
        prompts = sorted(
            ((self.prompt_ids(messages), row) for row, messages in requests), key=lambda item: -len(item[0])
        )
        if not prompts:
            return
        model = self.load_model()
        try:
            for start in range(0, len(prompts), self.batch_size):
                batch = prompts[start : start + self.batch_size]
                yield from zip((row for _, row in batch), self.generate(model, [ids for ids, _ in batch]))
        finally:
            del model

    def load_model(self):
        import torch
        from transformers import AutoModelForCausalLM

        on_gpu = this_device().capability is not None  # torch's GPU, or one stated by JUDGE_SFT_GPU (CPU tests)
        model = AutoModelForCausalLM.from_pretrained(
            self.model_path,
            dtype=torch.bfloat16 if on_gpu else torch.float32,
            device_map="auto" if on_gpu else None,
        )
        return model.eval()

    def generate(self, model, prompt_ids):
        """Greedy completions of one batch, left-padded so every prompt ends where generation starts."""
        import torch

        batch = self.tokenizer.pad({"input_ids": prompt_ids}, padding_side="left", return_tensors="pt")
        batch = {name: tensor.to(model.device) for name, tensor in batch.items()}
        with torch.no_grad():
            output = model.generate(
                **batch,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

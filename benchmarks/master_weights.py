"""Low-memory optimizers against fp32 master weights, side by side in one run: a tiny Qwen3 trained a few hundred
steps on fixed batches of the bundled HelpSteer2 sample with recipes/qwen3_32b.yaml's optimizer settings (AdamW,
lr 1e-5, betas 0.9 / 0.95, weight decay 0.01, 10% warmup then cosine, gradient clipping at 1.0), all from the same
bf16 initial weights. The rows are tokenised as training tokenises them (the real Qwen3 tokenizer and training chat
template); the model is judge_sft.tiny_model's Qwen3 (hidden 64, 2 layers) with the tokens the rows use for its vocabulary,
renumbered, so that 151,936 rows of LM head do not dominate a CPU run. What is compared is the optimizer's arithmetic: every candidate's model computes with bf16 weights and hands
bf16 gradients to its optimizer, as bf16 training on GPUs does; the forward and backward themselves run in fp32 on
those bf16 values (CPUs without bf16 units are ~100x slower in bf16), the same for every candidate.

    .venv/bin/python benchmarks/master_weights.py [--steps 300] [--batch-size 4] [--max-length 256]

Candidates, each as DeepSpeed's ZeRO-3 runs it:
- fp32 master (the reference): DeepSpeed's bf16 mixed precision; fp32 master weights and Adam states, bf16 copy.
- plain bf16 AdamW: `bf16_master_weights_and_grads` + `bf16_optimizer_states` with torch's AdamW.
- bf16 + Kahan (`master_weights: bf16_kahan`): the same with torch-optimi's AdamW and its bf16 Kahan compensation.
- bf16 + stochastic rounding: the update computed in fp32 and rounded stochastically to bf16 (torchao's
  `_fp32_to_bf16_sr`, written out here: torchao's optimizer compiles each step with torch.compile).
- 8-bit AdamW with fp32 master weights: bitsandbytes' AdamW8bit, when bitsandbytes is importable.

Prints, per candidate: final loss (mean of the last 20 steps), the distance of its weights from the reference's
relative to how far the reference moved from the start, the share of weights it never changed, and the bytes per
parameter of its master weights and optimizer states.
"""

import argparse
import math
import tempfile
import time

import torch
from tiny_run import tiny_recipe
from transformers import AutoTokenizer, get_cosine_schedule_with_warmup

LAST = 20  # steps averaged for the final loss
CHOSEN = "bf16 + Kahan (torch-optimi; bf16_kahan)"
# What `master_weights: bf16_kahan` must hold to: final loss and weights this close to the fp32 reference's.
LOSS_TOLERANCE, WEIGHT_TOLERANCE = 5e-4, 0.05


def tokenised_rows(recipe, max_length):
    from datasets import Dataset

    from judge_sft.data.tokenization import tokenize_dataset
    from judge_sft.train.chat_templates import training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(recipe["model_name_or_path"])
    rows, _ = tokenize_dataset(
        Dataset.from_parquet(recipe["train_file"]), tokenizer, training_chat_template(tokenizer), max_length, "final"
    )
    return [(row["input_ids"], row["labels"]) for row in rows]


def batches(rows, batch_size, steps):
    """Fixed padded batches, cycled over the steps, with the token ids renumbered densely; and the vocabulary size."""
    used = sorted({token for ids, _ in rows for token in ids})
    dense = {token: index for index, token in enumerate(used)}
    found = []
    for step in range(steps):
        picked = [rows[(step * batch_size + i) % len(rows)] for i in range(batch_size)]
        longest = max(len(ids) for ids, _ in picked)
        ids = torch.zeros((batch_size, longest), dtype=torch.long)
        labels = torch.full((batch_size, longest), -100)
        mask = torch.zeros((batch_size, longest), dtype=torch.long)
        for row, (row_ids, row_labels) in enumerate(picked):
            ids[row, : len(row_ids)] = torch.tensor([dense[token] for token in row_ids])
            labels[row, : len(row_ids)] = torch.tensor([dense[t] if t != -100 else -100 for t in row_labels])
            mask[row, : len(row_ids)] = 1
        found.append((ids, labels, mask))
    return found, len(used)


def tiny_qwen3(model_dir, vocab_size):
    """judge_sft.tiny_model's Qwen3 with the rows' vocabulary; random weights (seed 0) rounded to bf16, the start of
    every candidate."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    config.vocab_size = vocab_size
    config.update({"bos_token_id": None, "eos_token_id": None, "pad_token_id": None})  # ids of the full vocabulary
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").to(torch.bfloat16)


def param_groups(params, weight_decay):
    params = list(params)
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


class Candidate:
    """The weights one optimizer trains: bf16 (DeepSpeed's bf16 master weights), or fp32 master weights whose bf16
    copy the model computes with (DeepSpeed's mixed precision)."""

    def __init__(self, initial, make_optimizer, master_dtype):
        self.params = [torch.nn.Parameter(weight.detach().to(master_dtype).clone()) for weight in initial]
        self.optimizer = make_optimizer(self.params)

    def bf16_weights(self):
        return [param.detach().to(torch.bfloat16) for param in self.params]

    def step(self, gradients):
        for param, gradient in zip(self.params, gradients):
            param.grad = gradient.to(param.dtype)
        self.optimizer.step()

    def held_bytes(self):
        """Master weights and optimizer states (DeepSpeed keeps bf16 master weights apart from the bf16 params)."""
        states = [v for s in self.optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.numel() > 1]
        return sum(tensor.numel() * tensor.element_size() for tensor in self.params + states)


class StochasticRoundingAdamW(torch.optim.Optimizer):
    """AdamW on bf16 parameters and bf16 states: the update in fp32, the new weight rounded stochastically to bf16."""

    def __init__(self, params, lr, betas, eps, weight_decay):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                weight, grad = p.float(), p.grad.float()
                exp_avg = state["exp_avg"].float().lerp(grad, 1 - beta1)
                exp_avg_sq = state["exp_avg_sq"].float().lerp(grad.square(), 1 - beta2)
                state["exp_avg"].copy_(exp_avg)
                state["exp_avg_sq"].copy_(exp_avg_sq)
                denom = (exp_avg_sq / (1 - beta2 ** state["step"])).sqrt() + group["eps"]
                weight = weight * (1 - group["lr"] * group["weight_decay"])
                weight -= group["lr"] * exp_avg / (1 - beta1 ** state["step"]) / denom
                p.copy_(round_stochastically(weight))


def round_stochastically(x):
    """fp32 -> bf16, rounding away from zero with probability (the dropped 16 bits) / 2^16."""
    bits = x.view(torch.int32)
    dropped = bits & 0xFFFF
    kept = bits & -65536  # 0xFFFF0000 as int32
    rounded = torch.where(torch.randint(0, 1 << 16, x.shape, dtype=torch.int32) < dropped, kept + 0x10000, kept)
    return rounded.view(torch.float32).to(torch.bfloat16)


def candidates(settings):
    """name -> (optimizer over a parameter list, master weights' dtype)."""
    lr, betas, eps, wd = settings.lr, (0.9, 0.95), 1e-8, 0.01
    import optimi

    found = {
        "fp32 master (reference)": (
            lambda ps: torch.optim.AdamW(param_groups(ps, wd), lr=lr, betas=betas, eps=eps),
            torch.float32,
        ),
        "plain bf16 AdamW": (
            lambda ps: torch.optim.AdamW(param_groups(ps, wd), lr=lr, betas=betas, eps=eps),
            torch.bfloat16,
        ),
        CHOSEN: (
            lambda ps: optimi.AdamW(param_groups(ps, wd), lr=lr, betas=betas, eps=eps, kahan_sum=True),
            torch.bfloat16,
        ),
        "bf16 + stochastic rounding": (
            lambda ps: StochasticRoundingAdamW(param_groups(ps, wd), lr=lr, betas=betas, eps=eps, weight_decay=wd),
            torch.bfloat16,
        ),
    }
    try:
        import bitsandbytes
    except ImportError:
        print("bitsandbytes is not importable: 8-bit AdamW skipped")
    else:
        found["8-bit AdamW (bitsandbytes), fp32 master"] = (
            lambda ps: bitsandbytes.optim.AdamW8bit(param_groups(ps, wd), lr=lr, betas=betas, eps=eps),
            torch.float32,
        )
    return found


def train(compute, initial, make_optimizer, master_dtype, data, steps):
    torch.manual_seed(0)  # stochastic rounding draws the same numbers for any rerun
    candidate = Candidate(initial, make_optimizer, master_dtype)
    schedule = get_cosine_schedule_with_warmup(candidate.optimizer, math.ceil(0.1 * steps), steps)
    losses = []
    for ids, labels, mask in data:
        with torch.no_grad():
            for param, weight in zip(compute.parameters(), candidate.bf16_weights()):
                param.copy_(weight)
        loss = compute(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        gradients = [param.grad.to(torch.bfloat16) for param in compute.parameters()]
        compute.zero_grad(set_to_none=True)
        norm = torch.linalg.vector_norm(torch.stack([gradient.float().norm() for gradient in gradients]))
        scale = min(1.0, 1.0 / (norm.item() + 1e-6))  # clip_grad_norm_ at max_grad_norm 1.0
        candidate.step([(gradient.float() * scale).to(torch.bfloat16) for gradient in gradients])
        schedule.step()
        losses.append(loss.item())
    return torch.cat([weight.float().flatten() for weight in candidate.bf16_weights()]), losses, candidate.held_bytes()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-5)
    settings = parser.parse_args()
    torch.set_num_threads(1)  # steadier, and faster, on a shared machine than contending threads
    with tempfile.TemporaryDirectory() as workdir:
        recipe = tiny_recipe(workdir)
        rows = tokenised_rows(recipe, settings.max_length)
        data, vocab_size = batches(rows, settings.batch_size, settings.steps)
        compute = tiny_qwen3(recipe["model_name_or_path"], vocab_size).float().train()
    initial = [param.detach().to(torch.bfloat16) for param in compute.parameters()]
    params = sum(weight.numel() for weight in initial)
    start, results = torch.cat([weight.float().flatten() for weight in initial]), {}
    for name, (make_optimizer, master_dtype) in candidates(settings).items():
        began = time.perf_counter()
        weights, losses, held = train(compute, initial, make_optimizer, master_dtype, data, settings.steps)
        results[name] = (weights, losses, held, time.perf_counter() - began)
        print(f"{name}: {time.perf_counter() - began:.0f} s", flush=True)
    reference, reference_losses, *_ = results["fp32 master (reference)"]
    moved = (reference - start).norm()
    print(
        f"{params / 1e6:.2f}M parameters (vocabulary {vocab_size}), {len(rows)} rows, {settings.steps} steps, batch "
        f"{settings.batch_size}, lr {settings.lr:g}"
    )
    print(f"first loss {reference_losses[0]:.4f}; reference moved {moved:.4g} (L2) from the start\n")
    print(
        "| optimizer | final loss | vs reference | weight distance / reference's move | weights never changed | "
        "master + optimizer bytes/param | seconds |"
    )
    print("|---|---|---|---|---|---|---|")
    final_reference = sum(reference_losses[-LAST:]) / LAST
    for name, (weights, losses, held, seconds) in results.items():
        final = sum(losses[-LAST:]) / LAST
        unchanged = (weights == start).float().mean().item()
        print(
            f"| {name} | {final:.4f} | {final - final_reference:+.4f} | {(weights - reference).norm() / moved:.3f} | "
            f"{unchanged:.1%} | {held / params:.2f} | {seconds:.0f} |"
        )
    weights, losses, *_ = results[CHOSEN]
    loss_gap = abs(sum(losses[-LAST:]) / LAST - final_reference)
    distance = ((weights - reference).norm() / moved).item()
    tracks = loss_gap <= LOSS_TOLERANCE and distance <= WEIGHT_TOLERANCE
    print(
        f"\n{CHOSEN} {'tracks' if tracks else 'DOES NOT track'} the reference: loss within {loss_gap:.1e} "
        f"(tolerance {LOSS_TOLERANCE:g}), weights within {distance:.1%} of its move (tolerance {WEIGHT_TOLERANCE:.0%})"
    )


if __name__ == "__main__":
    main()

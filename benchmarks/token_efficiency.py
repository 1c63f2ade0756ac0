"""Token efficiency of training batches: real tokens / computed tokens, padded vs padding-free (ours).

    .venv/bin/python benchmarks/token_efficiency.py [--rows 4800] [--max-length 4096] [--micro-batch-size 12]

Rows are generated to look like HelpSteer2 (English-like text; prompt lengths log-normal with a mean of ~2,000
characters, responses ~960 with a median of ~640; 29% of prompts multi-turn), tokenised by the training code itself
(judge_sft.tokenization.tokenize_messages, real Qwen3 tokenizer, training chat template, truncation at max_length),
shuffled as the trainer's sampler does, and cut into micro batches. TRL's own DataCollatorForLanguageModeling collates
each micro batch; computed tokens are the elements of the input_ids it returns, real tokens the rows' lengths.

- padded: padding_free=False, every row padded to the longest of its micro batch.
- padded to max_length: the same collator with pad_to_multiple_of=max_length (a fixed-shape trainer such as verl
  without use_remove_padding).
- ours: padding_free=True (`padding_free: true`, the cookbook's use_remove_padding), rows concatenated.
- ours + sequence parallel (--sp-size): under Ulysses each micro batch must be a multiple of sp_size long.
  judge_sft/train/sequence_parallel.py (SPBatches) also pads the micro batches of one SP group to the longest of them
  (gloo gathers equal sizes only); both are counted, with and without that group padding.

Target: ours >= 0.99.
"""

import argparse
import random
import sys
import time

import numpy as np

TARGET = 0.99
MULTI_TURN_SHARE = 0.29
PROMPT_MEAN_CHARS, PROMPT_SIGMA = 2000, 1.0
RESPONSE_MEAN_CHARS, RESPONSE_SIGMA = 960, 0.9  # median ~640, as benchmarks/prepare_data.py
MAX_CHARS = 30_000
WORDS = (
    "the of and to a in is that for it as with was on be by this are or his from at which but have an they not you "
    "one were her all she there would their we him been has when who will more no if out so said what up its about "
    "into than them can only other new some could time these two may then do first any my now such like our over man "
    "me even most made after also did many before must through back years where much your way well down should "
    "because each just those people how too little state good very make world still own see men work long get here "
    "between both life being under never day same another know while last might us great old year off come since "
    "against go came right used take three model response answer question data system example value function list "
    "number result table code step first second however therefore important consider following provide information"
).split()
ZIPF_WEIGHTS = [1 / rank for rank in range(1, len(WORDS) + 1)]


def text(rng, characters):
    words = rng.choices(WORDS, weights=ZIPF_WEIGHTS, k=max(1, characters // 5))
    for index in range(0, len(words), rng.randint(8, 20)):  # sentences, now and then a paragraph
        words[index] = words[index].capitalize()
        if index:
            words[index - 1] += rng.choice([".", ".", ".", "?", ":\n", ".\n\n"])
    return " ".join(words) + "."


def length(rng, mean, sigma):
    """Log-normal characters with the given mean."""
    return min(MAX_CHARS, max(20, int(rng.lognormvariate(np.log(mean) - sigma**2 / 2, sigma))))


def conversation(rng):
    prompt_chars = length(rng, PROMPT_MEAN_CHARS, PROMPT_SIGMA)
    turns = 1 + 2 * rng.choice([1, 1, 1, 2, 3]) if rng.random() < MULTI_TURN_SHARE else 1  # user/assistant/.../user
    shares = [rng.random() + 0.2 for _ in range(turns)]
    messages = [
        {"role": ("user", "assistant")[index % 2], "content": text(rng, int(prompt_chars * share / sum(shares)))}
        for index, share in enumerate(shares)
    ]
    messages.append({"role": "assistant", "content": text(rng, length(rng, RESPONSE_MEAN_CHARS, RESPONSE_SIGMA))})
    return messages, prompt_chars, turns > 1


def tokenized_rows(count, max_length, seed):
    from transformers import AutoTokenizer

    from judge_sft.data.tokenization import tokenize_messages
    from judge_sft.tiny_model import qwen3_tokenizer_dir
    from judge_sft.train.chat_templates import training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir())
    chat_template = training_chat_template(tokenizer)
    rng = random.Random(seed)
    rows, prompt_chars, multi_turn = [], [], 0
    for _ in range(count):
        messages, chars, is_multi_turn = conversation(rng)
        row = tokenize_messages(messages, tokenizer, chat_template, max_length, "final")
        rows.append({"input_ids": row["input_ids"], "labels": row["labels"], "truncated": row["truncated"]})
        prompt_chars.append(chars)
        multi_turn += is_multi_turn
    return rows, tokenizer.pad_token_id, np.array(prompt_chars), multi_turn


def computed_tokens(micro_batches, collator):
    return [
        collator([{"input_ids": row["input_ids"], "labels": row["labels"]} for row in batch])["input_ids"].numel()
        for batch in micro_batches
    ]


def round_up(tokens, multiple):
    return -(-tokens // multiple) * multiple


def sequence_parallel_tokens(padding_free_tokens, sp_size, group_padding):
    """Under Ulysses each rank of an SP group loads its own micro batch and the group computes all of them, each
    sharded over the group (DeepSpeed's UlyssesSPDataLoaderAdapter), so consecutive runs of sp_size micro batches are a
    group. Each is padded to a multiple of sp_size, and with group_padding to the longest of its group first."""
    total = 0
    for start in range(0, len(padding_free_tokens), sp_size):
        group = padding_free_tokens[start : start + sp_size]
        total += (
            len(group) * round_up(max(group), sp_size)
            if group_padding
            else sum(round_up(tokens, sp_size) for tokens in group)
        )
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4800)
    parser.add_argument("--max-length", type=int, default=4096)
    parser.add_argument("--micro-batch-size", type=int, default=12)
    parser.add_argument("--sp-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    start = time.perf_counter()
    rows, pad_token_id, prompt_chars, multi_turn = tokenized_rows(args.rows, args.max_length, args.seed)
    random.Random(args.seed + 1).shuffle(rows)  # the trainer's random sampler
    micro_batches = [
        rows[index : index + args.micro_batch_size] for index in range(0, len(rows), args.micro_batch_size)
    ]
    lengths = np.array([len(row["input_ids"]) for row in rows])
    print(
        f"{len(rows):,} HelpSteer2-like rows ({multi_turn / len(rows):.0%} multi-turn, prompt chars mean "
        f"{prompt_chars.mean():,.0f} p50 {np.median(prompt_chars):,.0f}), real Qwen3 tokenizer, max_length "
        f"{args.max_length}: tokens per row mean {lengths.mean():,.0f} p50 {np.median(lengths):,.0f} "
        f"p99 {np.percentile(lengths, 99):,.0f}, {np.mean([row['truncated'] for row in rows]):.1%} truncated "
        f"({time.perf_counter() - start:.0f}s to tokenise)"
    )

    real = int(lengths.sum())
    padding_free = computed_tokens(micro_batches, DataCollatorForLanguageModeling(pad_token_id, padding_free=True))
    results = {
        "padded (TRL collator, padding_free=False)": sum(
            computed_tokens(micro_batches, DataCollatorForLanguageModeling(pad_token_id))
        ),
        "padded to max_length (pad_to_multiple_of=max_length)": sum(
            computed_tokens(
                micro_batches, DataCollatorForLanguageModeling(pad_token_id, pad_to_multiple_of=args.max_length)
            )
        ),
        "ours: padding-free (TRL collator, padding_free=True)": sum(padding_free),
        f"ours + Ulysses sp_size {args.sp_size}, padded to the SP group's longest": sequence_parallel_tokens(
            padding_free, args.sp_size, group_padding=True
        ),
        f"ours + Ulysses sp_size {args.sp_size}, each padded to a multiple of {args.sp_size} only": sequence_parallel_tokens(
            padding_free, args.sp_size, group_padding=False
        ),
    }
    print(f"{len(micro_batches)} micro batches of {args.micro_batch_size} rows; real tokens {real:,}")
    width = max(map(len, results))
    print(f"{'batches':<{width}}  {'computed tokens':>15}  {'real / computed':>15}")
    for name, computed in results.items():
        print(f"{name:<{width}}  {computed:>15,}  {real / computed:>15.4f}")
    ours = real / results["ours: padding-free (TRL collator, padding_free=True)"]
    print(f"target: ours >= {TARGET}: {'met' if ours >= TARGET else 'MISSED'}")
    return 0 if ours >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

"""The attention backend, checked before tokenising or loading weights: `auto` and named backends on a machine without
a GPU, on described GPUs (what is installed is this machine's), with sequence parallelism; the refused TRL keys; and
torch_varlen's packing of documents, against sdpa with an explicit block-causal mask."""

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, run_py, tiny_recipe

from judge_sft import cli
from judge_sft.errors import JudgeSFTError
from judge_sft.train.arguments import parse_recipe
from judge_sft.train.attention import Device, choose, probe_backend, this_device
from judge_sft.train.varlen_attention import STATED_GPU, attend_by_document, documents

NO_GPU = Device("no CUDA GPU", None)
H100 = Device("NVIDIA H100 80GB HBM3", (9, 0))
T4 = Device("Tesla T4", (7, 5))
CPU_FIX = "run this on the GPU machine, or set `attn_implementation: sdpa` to run on CPU"
without_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what happens on a machine without a GPU")


@without_gpu
def test_doctor_fails_the_shipped_32b_recipe_on_attention_on_a_machine_without_a_gpu(
    capsys, tiny_model_dir, small_data
):
    train, val = small_data
    overrides = ["--model_name_or_path", tiny_model_dir, "--train_file", train, "--val_file", val]
    code = cli.main(["doctor", str(REPO / "recipes" / "qwen3_32b.yaml"), *map(str, overrides)])
    lines = [line for line in capsys.readouterr().out.splitlines() if line[:4] in ("PASS", "WARN", "FAIL", "doct")]
    assert code == 1
    assert lines[0] == (
        "FAIL  attention: attn_implementation auto: this machine has no CUDA GPU, and auto chooses among GPU "
        f"attention kernels; {CPU_FIX}"
    )
    assert lines[-1].endswith(" 1 failed")


@without_gpu
def test_run_stops_on_a_gpu_attention_before_tokenising(tmp_path, tiny_model_dir, small_data):
    recipe = tiny_recipe(tmp_path, tiny_model_dir, *small_data, attn_implementation="flash_attention_2")
    result = run_py(recipe)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "judge-sft run: error: attn_implementation flash_attention_2: needs a CUDA GPU and this machine has none; "
        + CPU_FIX
    )
    assert "tokenizing" not in result.stderr + result.stdout and not (tmp_path / "out" / "recipe.yaml").exists()


def test_sdpa_runs_anywhere():
    assert choose("sdpa", 1, NO_GPU).name == "sdpa"
    assert choose(None, 2, NO_GPU).name == "sdpa"  # unset: transformers' default


@pytest.mark.parametrize(
    "name, device, sp_size, message",
    [
        (
            "flash_attention_2",
            H100,
            1,
            "attn_implementation flash_attention_2: not installed (pip install flash-attn --no-build-isolation: PyPI "
            "has its source only, a compile of hours); or set `attn_implementation: auto`",
        ),
        (
            "flash_attention_4",
            H100,
            1,
            "attn_implementation flash_attention_4: not installed (pip install 'judge-sft[gpu]', or pip install "
            "flash-attn-4); or set `attn_implementation: auto`",
        ),
        (
            "torch_varlen",
            T4,
            1,
            "attn_implementation torch_varlen: needs compute capability 8.0 or newer; this GPU is Tesla T4 (compute "
            "capability 7.5); set `attn_implementation: auto`",
        ),
        (
            "flash_attention_4",
            H100,
            8,
            "attn_implementation flash_attention_4: not with sp_size 8: accelerate's DeepSpeed-Ulysses accepts "
            "flash_attention_2, flash_attention_3, sdpa and kernels-community/flash-attn* kernels only; set "
            "`attn_implementation: auto` on a GPU, or sdpa",
        ),
        (
            "torch_varlen",
            NO_GPU,
            1,
            f"attn_implementation torch_varlen: needs a CUDA GPU and this machine has none; {CPU_FIX}",
        ),
        (
            "flash_attention_5",
            H100,
            1,
            "attn_implementation flash_attention_5: unknown; one of auto, flash_attention_3",
        ),
    ],
)
def test_a_named_backend_that_cannot_run_fails_naming_the_fix(name, device, sp_size, message):
    with pytest.raises(JudgeSFTError) as error:
        choose(name, sp_size, device)
    assert str(error.value).startswith(message)


def test_auto_on_a_gpu_takes_the_fastest_usable_backend_and_says_what_it_passed_over():
    """On an H100 with this machine's packages (no flash-attn 2, 3 or 4, no `kernels`): torch's own varlen kernel at
    sp_size 1, sdpa under Ulysses. The probe needs the GPU: off here."""
    single = choose("auto", 1, H100, probe=False)
    assert single.name == "torch_varlen"
    assert single.reason.startswith("auto -> torch_varlen on NVIDIA H100 80GB HBM3 (compute capability 9.0), sp_size 1")
    assert "flash_attention_4 (not installed (pip install 'judge-sft[gpu]', or pip install flash-attn-4))" in (
        single.reason
    )
    sharded = choose("auto", 8, H100, probe=False)
    assert sharded.name == "sdpa"
    assert "torch_varlen (not with sp_size 8" in sharded.reason
    assert sharded.reason.endswith("judge-sft runs sdpa document by document through torch's varlen flash kernel")


def test_auto_without_a_gpu_fails_naming_the_recipe_change():
    with pytest.raises(JudgeSFTError) as error:
        choose("auto", 1, NO_GPU)
    assert str(error.value) == (
        f"attn_implementation auto: this machine has no CUDA GPU, and auto chooses among GPU attention kernels; {CPU_FIX}"
    )


@pytest.mark.parametrize("key", ["use_liger_kernel", "activation_offloading"])
def test_unmeasured_trl_speedups_are_refused_with_their_reason(key, tmp_path, tiny_model_dir, small_data):
    recipe = tiny_recipe(tmp_path, tiny_model_dir, *small_data, **{key: True})
    with pytest.raises(JudgeSFTError) as error:
        parse_recipe([str(recipe)], for_launch=False)
    assert str(error.value).startswith(f"recipe: {key} is not supported by judge-sft: ")
    assert "measured" in str(error.value)


def mixing_attention(module, query, key, value, attention_mask, **kwargs):
    """Plain causal attention over the whole row: the mistake the probe is there to catch."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, None, **kwargs)


def failing_attention(module, query, key, value, attention_mask, **kwargs):
    raise RuntimeError("no kernel image is available for execution on the device")


def test_the_probe_passes_sdpa_and_catches_attention_that_mixes_documents_or_fails():
    """The probe as `auto` runs it on a GPU, here on CPU: sdpa keeps the documents of a padding-free row apart."""
    from transformers import AttentionInterface

    AttentionInterface.register("mixing_attention", mixing_attention)
    AttentionInterface.register("failing_attention", failing_attention)
    assert probe_backend("sdpa", device="cpu") is None
    assert probe_backend("mixing_attention", device="cpu").startswith(
        "its padding-free documents attend to each other here (logits differ by "
    )
    assert probe_backend("failing_attention", device="cpu") == (
        "fails here: RuntimeError: no kernel image is available for execution on the device"
    )


# ---- torch_varlen: documents found and attended apart (the kernel itself needs a GPU: tests/test_gpu.py)


def test_documents_start_at_each_row_and_where_positions_restart():
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    cu_seq_lens, longest = documents(positions, 1, 9, "cpu")
    assert cu_seq_lens.tolist() == [0, 3, 5, 9] and longest == 4
    cu_seq_lens, longest = documents(torch.arange(5)[None], 2, 5, "cpu")  # two rows, positions broadcast
    assert cu_seq_lens.tolist() == [0, 5, 10] and longest == 5


def per_document_kernel(query, key, value, cu_seq_lens, max_length, scale):
    """What a varlen kernel computes: causal attention within each [start, end) of cu_seq_lens."""
    outputs = []
    for start, end in zip(cu_seq_lens[:-1].tolist(), cu_seq_lens[1:].tolist()):
        q, k, v = (tensor[start:end].transpose(0, 1) for tensor in (query, key, value))
        outputs.append(F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=True))
    return torch.cat([out.transpose(0, 1) for out in outputs])


def block_causal_sdpa(query, key, value, lengths):
    """The reference: sdpa over the whole row with a block-causal mask built from the document lengths."""
    document = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    mask = (document[:, None] == document[None, :]) & torch.ones(len(document), len(document)).tril().bool()
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, enable_gqa=True)
    return out.transpose(1, 2)


@pytest.mark.parametrize("from_collator", [False, True], ids=["position_ids", "cu_seq_lens"])
def test_a_padding_free_row_is_attended_document_by_document(from_collator):
    torch.manual_seed(0)
    lengths = [3, 5, 4]
    query, key, value = torch.randn(1, 4, 12, 8), torch.randn(1, 2, 12, 8), torch.randn(1, 2, 12, 8)
    positions = torch.cat([torch.arange(length) for length in lengths])[None]
    collated = {"cu_seq_lens_q": torch.tensor([0, 3, 8, 12], dtype=torch.int32), "max_length_q": 5}
    out = attend_by_document(
        query,
        key,
        value,
        None,
        None,
        per_document_kernel,
        position_ids=positions,
        **(collated if from_collator else {}),
    )
    torch.testing.assert_close(out, block_causal_sdpa(query, key, value, lengths))


def test_padded_rows_attend_over_their_real_tokens_only():
    torch.manual_seed(0)
    query, key, value = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    out = attend_by_document(query, key, value, mask, None, per_document_kernel)
    first = F.scaled_dot_product_attention(query[:1], key[:1], value[:1], is_causal=True, enable_gqa=True)
    second = F.scaled_dot_product_attention(
        query[1:, :, :4], key[1:, :, :4], value[1:, :, :4], is_causal=True, enable_gqa=True
    )
    torch.testing.assert_close(out[0], first[0].transpose(0, 1))
    torch.testing.assert_close(out[1, :4], second[0].transpose(0, 1))
    assert out[1, 4:].abs().sum() == 0


# ---- GPU facts stated: the GPU-only branches on CPU (docs/gpu.md#gpu-branches-on-cpu)


def test_a_stated_gpu_replaces_what_torch_reports(monkeypatch):
    monkeypatch.setenv(STATED_GPU, "NVIDIA H100 80GB;80;9.0")
    assert this_device() == Device("NVIDIA H100 80GB", (9, 0), 80 * 2**30)
    monkeypatch.setenv(STATED_GPU, "NVIDIA H100 80GB;9.0")
    with pytest.raises(JudgeSFTError) as error:
        this_device()
    assert str(error.value) == (
        "JUDGE_SFT_GPU: expected 'name;memory GiB;major.minor', as in 'NVIDIA H100 80GB;80;9.0', "
        "not 'NVIDIA H100 80GB;9.0'"
    )


def test_auto_probes_torch_varlen_on_a_stated_gpu_with_the_cpu_kernel_standing_in(monkeypatch):
    monkeypatch.setenv(STATED_GPU, "NVIDIA H100 80GB;80;9.0")
    choice = choose("auto", 1)
    assert choice.name == "torch_varlen"
    assert choice.reason.startswith("auto -> torch_varlen on NVIDIA H100 80GB (compute capability 9.0), sp_size 1")


def greedy(model_dir, attn_implementation, prompts, tokenizer):
    """Greedy completions of left-padded prompts, as token ids, with one attention backend."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attn_implementation)
    batch = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad():
        output = model.generate(**batch, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return output[:, batch["input_ids"].shape[1] :].tolist()


def test_torch_varlen_decodes_as_sdpa_does(monkeypatch, tiny_model_dir, qwen3_tokenizer):
    """Generation with a cache: the prefill of left-padded rows gets transformers' padding mask, each decoding step
    (one query, the cache's keys) goes to sdpa; the greedy tokens equal sdpa's."""
    from judge_sft.train import varlen_attention

    monkeypatch.setenv(STATED_GPU, "NVIDIA H100 80GB;80;9.0")
    varlen_attention.register()
    prompts = ["Is 7 prime? Answer yes or no, and say why in a few words.", "And 9?"]
    reference = greedy(tiny_model_dir, "sdpa", prompts, qwen3_tokenizer)
    assert greedy(tiny_model_dir, "torch_varlen", prompts, qwen3_tokenizer) == reference


def test_inside_one_forward_the_documents_are_found_once_though_each_layer_passes_a_new_position_ids_tensor():
    from judge_sft.train import varlen_attention

    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    outside = [varlen_attention.documents(positions.clone(), 1, 9, "cpu") for _ in range(2)]
    assert outside[0] is not outside[1]  # a new tensor (as DeepSpeed's gather makes in every layer): found again
    with varlen_attention.documents_once():
        inside = [varlen_attention.documents(positions.clone(), 1, 9, "cpu") for _ in range(3)]
    assert inside[1] is inside[0] and inside[2] is inside[0]
    assert inside[0][0].tolist() == [0, 3, 5, 9] and inside[0][1] == 4
    assert varlen_attention.documents(positions.clone(), 1, 9, "cpu") is not inside[0]  # the forward is over

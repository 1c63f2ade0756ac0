"""The bare GPU box's packages (docs/gpu.md#a-bare-gpu-box-without-internet, written down once there) and what
judge-sft needs beside them (`make gpu-wheels`, `make gpu-box-check`).

    python benchmarks/gpu_box.py box        the box's list, one requirement a line (the stated versions pinned);
                                            `--stand-in torch numpy`: those at constraints.txt's versions instead
    python benchmarks/gpu_box.py absent     the packages known not to be there (its `# not there:` line)
    python benchmarks/gpu_box.py wheels     name==version (constraints.txt) of every package the run needs that
                                            the box lacks, or has at a version a requirement refuses

`wheels` walks the installed metadata of this environment (the tested versions, `make setup`): from judge-sft's
install_requires and its `test` extra (the GPU check runs pytest and the real Qwen3 tokenizer) down through the
requirements of every package the box lacks. A package the box lists is taken with its own requirements (they are
installed there with it), except those known not to be there; the libraries judge_sft/patches.py is checked against must be at exactly those versions.
"""

import argparse
import importlib.metadata
import re
import sys
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GUIDE = REPO / "docs" / "gpu.md"
BLOCK = re.compile(r"^```text gpu-box\n(.*?)^```", re.S | re.M)
LEFT_OUT = {  # needed by judge-sft somewhere, not by the GPU check: why each stays off the box
    "wandb": "the GPU check reports to TensorBoard",
    "ruff": "lint only",
}


def box_lines():
    return BLOCK.search(GUIDE.read_text()).group(1).splitlines()


def box_requirements():
    """The box's packages as Requirements, from the `text gpu-box` block of docs/gpu.md (python is left out)."""
    entries = [line.split("#")[0].strip() for line in box_lines()]
    return [Requirement(entry) for entry in entries if entry and not entry.startswith("python")]


def box_absent():
    """The block's `# not there: a, b, ...` names."""
    marked = [line.split(":", 1)[1] for line in box_lines() if line.startswith("# not there:")]
    return [canonicalize_name(name.strip()) for line in marked for name in line.split(",")]


def constraints():
    """{name: its constraints.txt line}: the versions the suite passed with."""
    lines = (REPO / "constraints.txt").read_text().splitlines()
    pins = [line.strip() for line in lines if "==" in line and not line.startswith("#")]
    return {canonicalize_name(line.split("==")[0]): line for line in pins}


def exact_versions():
    """What judge_sft/patches.py was checked against: {name: version}, required exactly."""
    from judge_sft.patches import CHECKED_AGAINST

    return {canonicalize_name(name): version for name, version in CHECKED_AGAINST.items()}


def requirements_of(name, extras=()):
    environment = default_environment()
    found = []
    for text in importlib.metadata.requires(name) or []:
        requirement = Requirement(text)
        if requirement.marker is None or any(
            requirement.marker.evaluate({**environment, "extra": extra}) for extra in ("", *extras)
        ):
            found.append(requirement)
    return found


def box_has(requirement, box):
    """Whether the box's package satisfies `requirement` (an unversioned entry is taken to)."""
    name = canonicalize_name(requirement.name)
    if name not in box:
        return False
    stated = box[name]
    if stated is None:
        return True
    exact = exact_versions().get(name)
    return (exact is None or stated == exact) and requirement.specifier.contains(stated, prereleases=True)


def box_closure(box, absent):
    """Every package present on the box: its list and, transitively, what those require here, but `absent`."""
    present, todo = set(), list(box)
    while todo:
        name = todo.pop()
        if name in present:
            continue
        if name in absent:
            continue
        present.add(name)
        try:
            todo += [canonicalize_name(req.name) for req in requirements_of(name)]
        except importlib.metadata.PackageNotFoundError:
            pass
    return present


def needed_wheels():
    """{name: tested version} of what the run needs and the box lacks."""
    box = {}
    for requirement in box_requirements():
        pinned = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        box[canonicalize_name(requirement.name)] = pinned[0] if pinned else None
    present = box_closure(box, box_absent())
    wheels, todo = {}, requirements_of("judge-sft", extras=("test",))
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in wheels or name in LEFT_OUT or name == "judge-sft":
            continue
        if box_has(requirement, box) or (name in present and name not in box):
            continue
        wheels[name] = importlib.metadata.version(name)
        todo += requirements_of(name)
    return dict(sorted(wheels.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["box", "absent", "wheels"])
    parser.add_argument("--stand-in", nargs="*", default=[], help="box packages to take at constraints.txt's version")
    args = parser.parse_args()
    if args.what == "box":
        stand_ins = {canonicalize_name(name) for name in args.stand_in}
        tested = constraints()
        lines = [
            tested[canonicalize_name(req.name)] if canonicalize_name(req.name) in stand_ins else str(req)
            for req in box_requirements()
        ]
        print("\n".join(lines))
    elif args.what == "absent":
        print("\n".join(box_absent()))
    else:
        print("\n".join(f"{name}=={version}" for name, version in needed_wheels().items()))


if __name__ == "__main__":
    main()

"""The house rules of the package: short modules, a library that never imports its commands, a README file map that
matches the tree."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "judge_sft"
MAX_MODULE_LINES = 300


def modules():
    return sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def imported_modules(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_module_is_over_300_lines():
    long = {str(path.relative_to(REPO)): n for path in modules() if (n := len(path.read_text().splitlines())) > 300}
    assert long == {}


def test_the_library_never_imports_the_commands():
    library = [path for path in modules() if "commands" not in path.parts and path.name != "cli.py"]
    offenders = {
        str(path.relative_to(REPO)): sorted(
            name for name in imported_modules(path) if name.startswith("judge_sft.commands")
        )
        for path in library
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def file_map_entries():
    """The `judge_sft/` tree drawn in README.md, as paths relative to the package."""
    readme = (REPO / "README.md").read_text()
    tree = readme[readme.index("\njudge_sft/\n") :]
    tree = tree[: tree.index("```")]
    entries, parents = set(), []
    for line in tree.splitlines()[2:]:
        match = re.match(r"^((?:│   |    )*)[├└]── (\S+)", line)
        if not match:
            continue
        depth = len(match.group(1)) // 4
        parents = parents[:depth] + [match.group(2).rstrip("/")]
        entries.add("/".join(parents))
    return entries


def test_readme_file_map_matches_the_package_tree():
    tracked = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.name != "__init__.py"
    }
    folders = {
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*") if path.is_dir() and path.name != "__pycache__"
    }
    entries = file_map_entries()
    # a folder entry with no entries below it stands for all its files
    whole = {entry for entry in entries if entry in folders and not any(e.startswith(entry + "/") for e in entries)}
    tracked = {path for path in tracked if not any(path.startswith(folder + "/") for folder in whole)}
    assert sorted(tracked - entries) == []  # files missing from the map
    assert sorted(entries - tracked - folders - {"__init__.py"}) == []  # map entries that do not exist


def test_the_suites_longest_first_order_names_test_files_that_exist():
    from conftest import LONGEST_FIRST

    tests = Path(__file__).resolve().parent
    assert [name for name in LONGEST_FIRST if not (tests / name).is_file()] == []
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)

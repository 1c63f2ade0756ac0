"""Writing a file whole or not at all: readers (the model card, a relaunch, another node) never see half of one."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from judge_sft.errors import JudgeSFTError, one_line


def write_atomically(path, data):
    """Write `data` (str or bytes) to `path` through a uniquely named temporary file in the same directory, then rename.
    Unique, since every node of a multi-node launch may write the same file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


@contextlib.contextmanager
def staged_directory(directory, names, overwrite=False):
    """A staging folder to write `names` into; they move into `directory` only when the block succeeds.

    The staging folder is made inside `directory`, so the final renames never cross a filesystem (the directory may
    be a container volume or NFS mount of its own). The directories this call created are removed again on failure."""
    directory = Path(directory)
    refuse_existing(directory, names, overwrite)
    created = first_missing(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory))
    except OSError as error:
        raise cannot_write(directory, error) from error
    try:
        yield staging
        try:
            for name in names:
                os.replace(staging / name, directory / name)
        except OSError as error:
            raise cannot_write(directory, error) from error
    except BaseException:
        if created:
            shutil.rmtree(created, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def first_missing(directory):
    """The outermost of `directory` and its parents that does not exist yet (None when `directory` exists)."""
    missing = None
    for path in (directory, *directory.absolute().parents):
        if path.exists():
            return missing
        missing = path
    return missing


def cannot_write(directory, error):
    return JudgeSFTError(f"{directory}: cannot write output there ({error.strerror or one_line(error)})")


def refuse_existing(directory, names, overwrite):
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise JudgeSFTError(f"{directory}: exists and is not a directory")
    existing = [name for name in names if (directory / name).exists()]
    if existing and not overwrite:
        raise JudgeSFTError(f"{directory}: already holds {', '.join(existing)}; pass --overwrite to replace")

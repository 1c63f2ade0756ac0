import sys


class JudgeSFTError(Exception):
    """A user-facing error: its message is one line that names the file (and row) at fault.

    The CLI prints it as `judge-sft <command>: error: <message>` and exits 1, without a traceback.
    """


def one_line(error: Exception) -> str:
    """The first line of another library's error, for the end of a JudgeSFTError message."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def print_error(line: str) -> None:
    """`line` and its newline to stderr in one write. print() writes the newline separately, and on an unbuffered
    stderr shared by the ranks of a launch another rank's log line landed between the two."""
    sys.stderr.write(f"{line}\n")
    sys.stderr.flush()

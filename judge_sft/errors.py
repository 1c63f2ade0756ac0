class JudgeSFTError(Exception):
    """A user-facing error: its message is one line that names the file (and row) at fault.

    The CLI prints it as `judge-sft <command>: error: <message>` and exits 1, without a traceback.
    """

"""The rules of a valid conversation (`check_messages`, also used by doctor), applied to a whole file."""

from dataclasses import dataclass, field

from judge_sft.data.messages import MESSAGES_COLUMN, ROLES, TRAIN_ON_METADATA_KEY, iter_conversations, open_messages
from judge_sft.errors import JudgeSFTError


def check_messages(messages) -> list[str]:
    """The problems with one conversation (an empty list when it is valid).

    Valid: a non-empty list of {role, content}; roles system (first message only), user, assistant; after the
    optional system message, user and assistant alternate starting with user; the last message is from the
    assistant; no content is empty or blank.
    """
    if messages is None:
        return ["messages is null"]
    if not isinstance(messages, list):
        return [f"messages is not a list (got {type(messages).__name__})"]
    if not messages:
        return ["no messages"]
    problems = []
    expected = "user"  # the role the next non-system message should have
    for index, message in enumerate(messages):
        role, content = (message.get("role"), message.get("content")) if isinstance(message, dict) else (None, None)
        where = f"message {index}"
        if role not in ROLES:
            problems.append(f"{where}: role is {role!r}, expected one of {', '.join(ROLES)}")
        elif role == "system":
            if index != 0:
                problems.append(f"{where}: system message is allowed first only")
        elif role != expected:
            problems.append(f"{where}: expected {expected}, got {role} (user and assistant alternate, user first)")
        if role in ("user", "assistant"):
            expected = "assistant" if role == "user" else "user"
        if not isinstance(content, str):
            problems.append(f"{where}: content is {'missing' if content is None else type(content).__name__}")
        elif not content.strip():
            problems.append(f"{where}: content is empty")
    last_role = messages[-1].get("role") if isinstance(messages[-1], dict) else None
    if last_role != "assistant":
        problems.append(f"last message is from {last_role}, expected assistant")
    return problems


@dataclass
class Validation:
    path: str
    rows: int = 0
    invalid: int = 0
    problems: list = field(default_factory=list)  # "FILE row N: problem", in row order
    train_on: str | None = None  # what prepare-data recorded in the file

    def summary(self):
        note = f"train_on={self.train_on}" if self.train_on else "no train_on metadata: every assistant turn trains"
        return f"{self.path}: {self.rows} rows, {self.rows - self.invalid} valid, {self.invalid} invalid ({note})"


def validate_file(path, messages_key=MESSAGES_COLUMN) -> Validation:
    """Every row of a messages Parquet file checked with `check_messages`; a file without rows is an error, as in
    doctor: there is nothing to train on."""
    parquet = open_messages(path, messages_key)
    if parquet.metadata.num_rows == 0:
        raise JudgeSFTError(f"{path}: no rows")
    train_on = (parquet.schema_arrow.metadata or {}).get(TRAIN_ON_METADATA_KEY)
    result = Validation(str(path), train_on=train_on.decode() if train_on else None)
    for row, messages in iter_conversations(path, messages_key):
        problems = check_messages(messages)
        result.invalid += bool(problems)
        result.problems += [f"{path} row {row}: {problem}" for problem in problems]
        result.rows += 1
    return result

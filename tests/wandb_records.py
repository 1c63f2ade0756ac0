"""Read an offline wandb run (`run-*.wandb`) back: a LevelDB-log of protobuf Records (wandb no longer ships a reader)."""

import json
import struct

from wandb.proto import wandb_internal_pb2

BLOCK_SIZE = 32768
FILE_HEADER = struct.Struct("<4sHB")  # b":W&B", magic, version
RECORD_HEADER = struct.Struct("<IHB")  # crc32, length, type (1 full, 2 first, 3 middle, 4 last)


def records(path):
    data = open(path, "rb").read()
    ident, _, _ = FILE_HEADER.unpack_from(data)
    assert ident == b":W&B", f"{path} is not a wandb run file"
    offset, pending = FILE_HEADER.size, b""
    while offset + RECORD_HEADER.size <= len(data):
        left_in_block = BLOCK_SIZE - offset % BLOCK_SIZE
        if left_in_block < RECORD_HEADER.size:  # block trailer padding
            offset += left_in_block
            continue
        _, length, kind = RECORD_HEADER.unpack_from(data, offset)
        offset += RECORD_HEADER.size
        if kind == 0 and length == 0:
            offset += BLOCK_SIZE - offset % BLOCK_SIZE if offset % BLOCK_SIZE else 0
            continue
        pending += data[offset : offset + length]
        offset += length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def history(path):
    """The logged rows, as dicts of metric name -> value."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
    return rows

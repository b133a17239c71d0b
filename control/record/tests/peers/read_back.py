"""Read an acus record back with the PyPI readers and print one JSON line: per-topic counts and the std_msgs/String
texts as each reader decoded them. Usage: read_back.py FILE.mcap [--truncated] (a truncated file: Python mcap only, up to
where it stops; rosbags needs the finished bag with metadata.yaml)."""
import json
import sys
from collections import Counter
from pathlib import Path

path = Path(sys.argv[1])
truncated = "--truncated" in sys.argv
out = {}

from mcap.reader import NonSeekingReader
from mcap_ros2.decoder import DecoderFactory
from mcap_ros2.reader import read_ros2_messages


def decoded():
    """(topic, log time, message) in file order. read_ros2_messages seeks for a summary and yields nothing from a
    truncated file; the non-seeking reader in file order (log_time_order=False: no sorting of the whole file first)
    yields every message of the complete chunks, then raises at the unfinished one."""
    if not truncated:
        for m in read_ros2_messages(str(path), log_time_order=False):
            yield m.channel.topic, m.log_time_ns, m.ros_msg
        return
    reader = NonSeekingReader(path.open("rb"), decoder_factories=[DecoderFactory()])
    for _schema, channel, message, ros_msg in reader.iter_decoded_messages(log_time_order=False):
        yield channel.topic, message.log_time, ros_msg


counts, texts, last_seq, error = Counter(), [], None, None
try:
    for topic, log_time, msg in decoded():
        counts[topic] += 1
        if hasattr(msg, "data"):
            texts.append(msg.data)
        if topic == "/joint_states":
            last_seq = [log_time, list(msg.position)]
except Exception as e:  # a truncated file ends in an error after its last complete chunk
    error = f"{type(e).__name__}: {e}"
out["mcap"] = {"counts": counts, "texts": texts, "last_joint_state": last_seq, "error": error}

if not truncated:
    from rosbags.highlevel import AnyReader
    counts, texts = Counter(), []
    with AnyReader([path.parent]) as reader:
        for conn, _t, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            counts[conn.topic] += 1
            if conn.msgtype == "std_msgs/msg/String":
                texts.append(msg.data)
    out["rosbags"] = {"counts": counts, "texts": texts}
print(json.dumps(out))

"""pyigtl playing 3D Slicer through a whole biopsy against `acus` with --igtl (issue 14, acceptance 1).

Usage: slicer_biopsy.py PORT SCANS_DIR ENTRY_RAS_MM TARGET_RAS_MM   (points as x,y,z)
Prints one JSON line: every ACK reply, the NeedleTip TRANSFORM rate while the needle moved, each IMAGE's voxel checked
against pydicom's position of the same voxel in the series on disk (LPS -> RAS here), and the STATUS messages, decoded by
the few lines below (pyigtl has no STATUS type) on a second, raw connection.
"""
import glob
import json
import os
import socket
import struct
import sys
import threading
import time

import numpy as np
import pydicom
import pyigtl

port, scans = int(sys.argv[1]), sys.argv[2]
entry = [float(v) for v in sys.argv[3].split(",")]
target = [float(v) for v in sys.argv[4].split(",")]
client = pyigtl.OpenIGTLinkClient(host="127.0.0.1", port=port)
out = {"acks": [], "images": {}, "status": []}
stop = threading.Event()


def status_reader():
    """A raw client: 58-byte big-endian header (version, type, device, timestamp, body size, CRC), then the body;
    STATUS content: code u16, subcode i64, error name char[20], message (NUL-terminated)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(0.5)
    buf = b""
    while not stop.is_set():
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 58:
            version, kind, _device, _ts, size, _crc = struct.unpack(">H12s20sQQQ", buf[:58])
            if len(buf) < 58 + size:
                break
            body, buf = buf[58:58 + size], buf[58 + size:]
            if kind.rstrip(b"\0") != b"STATUS":
                continue
            content = body
            if version >= 2:  # extended header: its size, the metadata header's and the metadata's, then content
                ext, meta_header, meta = struct.unpack(">HHI", body[:8])
                content = body[ext:len(body) - meta_header - meta]
            code, _sub, name = struct.unpack(">Hq20s", content[:30])
            text = content[30:].split(b"\0")[0].decode()
            out["status"].append({"code": code, "error": name.rstrip(b"\0").decode(), "text": text})
    s.close()


threading.Thread(target=status_reader, daemon=True).start()


def ask(message, timeout=120):
    client.send_message(message, wait=True)
    reply = client.wait_for_message("ACK", timeout=timeout)
    text = reply.string if reply is not None else None
    out["acks"].append(text)
    return text or ""


def command(text):
    return ask(pyigtl.StringMessage(text, device_name="CMD"))


tips = []


def count_tips():
    while not stop.is_set():
        tip = client.wait_for_message("NeedleTip", timeout=0.2)
        if tip is not None:
            tips.append((time.time(), tip.matrix[:3, 3].tolist()))
        time.sleep(0.002)


def check_image(device, pattern):
    """The IMAGE's IJK->RAS matrix puts voxel (i, j, k) where pydicom puts it (LPS, negated to RAS)."""
    image = client.wait_for_message(device, timeout=30)
    if image is None:
        out["images"][device] = {"error": "no IMAGE"}
        return
    series = [d for d in glob.glob(os.path.join(scans, pattern)) if os.path.isdir(d)]
    slices = [pydicom.dcmread(f) for f in glob.glob(os.path.join(series[0], "*"))]
    normal = np.cross(np.array(slices[0].ImageOrientationPatient[:3], float),
                      np.array(slices[0].ImageOrientationPatient[3:], float))
    slices.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, float))))
    worst = 0.0
    for i, j, k in [(3, 5, 1), (40, 17, len(slices) // 2), (int(slices[0].Columns) - 1, int(slices[0].Rows) - 1,
                                                           len(slices) - 1)]:
        d = slices[k]
        row, col = np.array(d.ImageOrientationPatient[:3], float), np.array(d.ImageOrientationPatient[3:], float)
        lps = np.array(d.ImagePositionPatient, float) + i * float(d.PixelSpacing[1]) * row + j * float(d.PixelSpacing[0]) * col
        ras = lps * np.array([-1.0, -1.0, 1.0])
        got = (np.array(image.ijk_to_world_matrix) @ np.array([i, j, k, 1.0]))[:3]
        worst = max(worst, float(np.linalg.norm(got - ras)))
    out["images"][device] = {"voxel_error_mm": worst, "slices": len(slices)}


ask(pyigtl.PointMessage(positions=[entry], names=["entry"], device_name="plan"))
ask(pyigtl.PointMessage(positions=[target], names=["target"], device_name="plan"))
# A console that came up after the cycle finds the stop its silence latched: reset once, as at the start of a session.
command("reset")
command("scan")
check_image("planning", "*planning")
for _ in range(200):
    if command("register").startswith("register: ok"):
        break
    time.sleep(0.05)
command("power on")
command("plan")
command("align")
counter = threading.Thread(target=count_tips, daemon=True)
counter.start()
moving_from = time.time()
step = 0
for step in range(1, 11):
    reply = command("insert")
    check_image(f"check-{step}", f"*check-step{step}")
    if "ready to confirm" in reply or not reply.startswith("insert: ok"):
        break
moving_to = time.time()
command("confirm")
time.sleep(0.3)  # the last STATUS (state after confirm) reaches the raw client
stop.set()
moving = [t for t, _ in tips if moving_from <= t <= moving_to]
out["tip_rate_hz"] = len(moving) / max(moving_to - moving_from, 1e-9)
out["last_tip_ras_mm"] = tips[-1][1] if tips else None
out["steps"] = step
print(json.dumps(out), flush=True)
client.stop()

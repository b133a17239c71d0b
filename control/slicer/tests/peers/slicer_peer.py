"""pyigtl (an independent OpenIGTLink implementation) playing 3D Slicer against the acus slicer_bridge.

Modes (argv[1]), each printing one JSON line on stdout:
  session PORT   send entry/target/unknown POINTs and the commands "plan" and "launch rocket", one at a time (pyigtl
                 keeps only the latest message per device, so each waits for its ACK), then count NeedleTip TRANSFORMs
                 for 2 s and report the last one and the T_robot_ct received on connect.
  hold PORT      connect, prove the bridge has entered this client (an ACK to an unknown command), print
                 {"connected": true}, then disconnect when a line arrives on stdin and print {"closed": true}.
"""
import json
import sys
import time

import pyigtl

mode, port = sys.argv[1], int(sys.argv[2])
client = pyigtl.OpenIGTLinkClient(host="127.0.0.1", port=port)


def ask(message, timeout=30):
    client.send_message(message, wait=True)
    reply = client.wait_for_message("ACK", timeout=timeout)
    return reply.string if reply is not None else None


def command(text):
    return ask(pyigtl.StringMessage(text, device_name="CMD"))


def point(name, position):
    return ask(pyigtl.PointMessage(positions=[position], names=[name], device_name="plan"))


if mode == "session":
    out = {}
    out["entry"] = point("Entry", [10.0, 20.0, 30.0])
    out["target"] = point("target", [12.5, -25.0, 70.0])
    out["lesion"] = point("lesion", [0.0, 0.0, 0.0])
    out["plan"] = command("plan")
    out["unknown"] = command("launch rocket")
    registration = client.wait_for_message("T_robot_ct", timeout=10)
    out["t_robot_ct"] = registration.matrix.tolist() if registration is not None else None
    # Drop a tip that arrived before counting starts, then count fresh ones for 2 s.
    client.wait_for_message("NeedleTip", timeout=10)
    count, last, start = 0, None, time.time()
    while time.time() - start < 2.0:
        tip = client.wait_for_message("NeedleTip", timeout=0.5)
        if tip is not None:
            count += 1
            last = tip.matrix.tolist()
    out["tips"] = count
    out["seconds"] = time.time() - start
    out["tip"] = last
    print(json.dumps(out), flush=True)
elif mode == "hold":
    reply = command("hello")
    print(json.dumps({"connected": reply is not None, "reply": reply}), flush=True)
    sys.stdin.readline()
    client.stop()
    print(json.dumps({"closed": True}), flush=True)
else:
    sys.exit(f"unknown mode {mode}")
client.stop()

"""rclpy peer: announce a CT series on /scan/series, call /registration/register until the answer is about that series,
for a bad series first and a good one second; then read /registration/transform and /diagnostics. One JSON line out."""
import argparse
import json
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import String
from std_srvs.srv import Trigger

ap = argparse.ArgumentParser()
ap.add_argument("--bad", required=True)
ap.add_argument("--good", required=True)
args = ap.parse_args()

rclpy.init()
node = rclpy.create_node("registration_peer")
latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
series = node.create_publisher(String, "/scan/series", latched)
transforms, diagnostics = [], []
node.create_subscription(TransformStamped, "/registration/transform", transforms.append, latched)
node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
client = node.create_client(Trigger, "/registration/register")
deadline = time.monotonic() + 60.0


def fail(message):
    print("peer: " + message, file=sys.stderr)
    sys.exit(2)


if not client.wait_for_service(timeout_sec=30.0):
    fail("/registration/register never appeared")


def register(folder):
    """Announce `folder`, then call until the answer names it (the announcement may still be on its way)."""
    series.publish(String(data=folder))
    while time.monotonic() < deadline:
        future = client.call_async(Trigger.Request())
        rclpy.spin_until_future_complete(node, future, timeout_sec=30.0)
        if not future.done():
            fail("/registration/register did not answer")
        answer = future.result()
        if folder in answer.message:
            return {"success": answer.success, "message": answer.message}
        rclpy.spin_once(node, timeout_sec=0.05)
    fail(f"no answer about {folder}")


bad = register(args.bad)
good = register(args.good)
while not transforms or not any(s.level == DiagnosticStatus.OK for a in diagnostics for s in a.status):
    if time.monotonic() > deadline:
        fail(f"{len(transforms)} transforms, {len(diagnostics)} diagnostics")
    rclpy.spin_once(node, timeout_sec=0.1)

t = transforms[-1]
print(json.dumps({
    "bad": bad,
    "good": good,
    "transform": {
        "frame_id": t.header.frame_id, "child_frame_id": t.child_frame_id,
        "translation": [t.transform.translation.x, t.transform.translation.y, t.transform.translation.z],
        "rotation_xyzw": [t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, t.transform.rotation.w],
    },
    "diagnostics": [{"level": s.level[0],
                     "name": s.name, "message": s.message, "values": {kv.key: kv.value for kv in s.values}}
                    for a in diagnostics for s in a.status],
}))
node.destroy_node()
rclpy.shutdown()

"""rclpy peer for the round-trip test: receive PoseStamped on /acus_test/pose, then call the std_srvs/Trigger service
/acus_test/trigger, and print one JSON line with what it saw. Exits non-zero when the other side never shows up."""
import argparse
import json
import sys
import time

import rclpy
from geometry_msgs.msg import PoseStamped
from std_srvs.srv import Trigger

ap = argparse.ArgumentParser()
ap.add_argument("--poses", type=int, default=5)
ap.add_argument("--timeout", type=float, default=30.0)
args = ap.parse_args()

rclpy.init()
node = rclpy.create_node("pose_trigger_peer")
received = []
node.create_subscription(PoseStamped, "/acus_test/pose", lambda m: received.append(m), 10)
client = node.create_client(Trigger, "/acus_test/trigger")

deadline = time.monotonic() + args.timeout
while len(received) < args.poses:
    if time.monotonic() > deadline:
        print(f"peer: only {len(received)} of {args.poses} poses within {args.timeout} s", file=sys.stderr)
        sys.exit(2)
    rclpy.spin_once(node, timeout_sec=0.1)

if not client.wait_for_service(timeout_sec=max(0.0, deadline - time.monotonic())):
    print("peer: /acus_test/trigger never appeared", file=sys.stderr)
    sys.exit(3)
future = client.call_async(Trigger.Request())
rclpy.spin_until_future_complete(node, future, timeout_sec=max(0.0, deadline - time.monotonic()))
if not future.done():
    print("peer: /acus_test/trigger did not answer", file=sys.stderr)
    sys.exit(4)
response = future.result()
print(json.dumps({
    "poses": [{"frame_id": m.header.frame_id, "x": m.pose.position.x, "y": m.pose.position.y, "z": m.pose.position.z,
               "qw": m.pose.orientation.w} for m in received],
    "trigger": {"success": response.success, "message": response.message},
}))
node.destroy_node()
rclpy.shutdown()

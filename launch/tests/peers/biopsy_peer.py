"""rclpy peer that drives a whole biopsy through acus's ROS 2 interface alone: it holds the e-stop released (a 20 Hz
heartbeat on /estop/operator) and its deadman held (/deadman/operator), calls the services in order, and watches /joint_states and /needle/tip. One JSON line out."""
import json
import sys
import time

import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger

rclpy.init()
node = rclpy.create_node("biopsy_peer")
estop = node.create_publisher(Bool, "/estop/operator", 10)
deadman = node.create_publisher(Bool, "/deadman/operator", 10)


def heartbeat():
    estop.publish(Bool(data=False))
    deadman.publish(Bool(data=True))


node.create_timer(0.05, heartbeat)
joint_stamps, tips, states = [], [], []
node.create_subscription(
    JointState, "/joint_states",
    lambda m: joint_stamps.append((m.header.stamp.sec + m.header.stamp.nanosec * 1e-9, list(m.position))), 100)
node.create_subscription(PoseStamped, "/needle/tip", lambda m: tips.append(m), 100)
latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
node.create_subscription(String, "/procedure/state", lambda m: states.append(m.data), latched)
answers = []


def fail(message):
    print("peer: " + message, file=sys.stderr)
    sys.exit(2)


def call(name, kind=Trigger, request=None, may_refuse=False):
    client = node.create_client(kind, name)
    if not client.wait_for_service(timeout_sec=30.0):
        fail(f"{name} never appeared")
    future = client.call_async(request if request is not None else kind.Request())
    rclpy.spin_until_future_complete(node, future, timeout_sec=300.0)
    if not future.done():
        fail(f"{name} did not answer")
    answer = future.result()
    answers.append({"service": name, "success": answer.success, "message": answer.message})
    if not answer.success and not may_refuse:
        print(json.dumps({"answers": answers}))
        fail(f"{name} refused: {answer.message}")
    return answer


scan = call("/procedure/scan")
series = scan.message.split("planning scan written to ")[1].split(" → ")[0]
for _ in range(200):
    # Until the registration node has heard of the scan on /scan/series, it refuses with "no CT series announced".
    registered = call("/registration/register", may_refuse=True)
    if series in registered.message:
        if not registered.success:
            fail(f"registration refused: {registered.message}")
        break
    rclpy.spin_once(node, timeout_sec=0.02)
else:
    fail("the registration never saw the planning scan")
# The console came up after the cycle: clear the stop its silence may have latched (refused if a cause persists).
call("/reset_fault", may_refuse=True)
call("/enable", SetBool, SetBool.Request(data=True))
call("/plan")
call("/align")
for _ in range(20):
    if call("/insert_step").message.endswith("→ ready to confirm"):
        break
else:
    fail("never ready to confirm")
call("/confirm")
# Watch the retraction: /joint_states and /needle/tip while the needle comes out.
before = len(joint_stamps)
call("/retract")
call("/enable", SetBool, SetBool.Request(data=False))
deadline = time.monotonic() + 10.0
while (not states or states[-1] != "done") and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.05)
insertion = [p[5] for _, p in joint_stamps if len(p) == 6]
print(json.dumps({
    "answers": answers,
    "states": states,
    "joint_states": len(joint_stamps),
    "joint_state_span_s": joint_stamps[-1][0] - joint_stamps[0][0] if joint_stamps else 0.0,
    "max_insertion": max(insertion) if insertion else None,
    "last_insertion": insertion[-1] if insertion else None,
    "tips": len(tips),
    "tip_frame": tips[-1].header.frame_id if tips else None,
}))
node.destroy_node()
rclpy.shutdown()

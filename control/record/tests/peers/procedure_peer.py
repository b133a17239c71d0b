"""rclpy peer for the recorder test: once the recorder subscribes to every topic, publish a short procedure on the
record's topics (50 joint states, one message on each other topic), then keep the node alive until killed (reliable
delivery needs the publisher to stay up). Prints nothing; exits 2 if the recorder never shows up."""
import json
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TransformStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import String

rclpy.init()
node = rclpy.create_node("procedure_peer")
pubs = {t: node.create_publisher(c, t, 100) for t, c in [
    ("/joint_states", JointState), ("/needle/tip", PoseStamped), ("/procedure/state", String),
    ("/diagnostics", DiagnosticArray), ("/registration/transform", TransformStamped), ("/procedure/requests", String),
    ("/procedure/answers", String), ("/procedure/faults", String), ("/scans", String)]}

deadline = time.monotonic() + 30
while any(p.get_subscription_count() < 1 for p in pubs.values()):
    if time.monotonic() > deadline:
        print("peer: the recorder did not subscribe to every topic", file=sys.stderr)
        sys.exit(2)
    rclpy.spin_once(node, timeout_sec=0.05)


def s(text):
    return String(data=text)


pubs["/procedure/state"].publish(s("Registered"))
pubs["/procedure/requests"].publish(s(json.dumps({"id": 3, "from": "peer", "request": "insert", "detail": "62 mm"})))
pubs["/procedure/answers"].publish(s(json.dumps({"id": 3, "accepted": True, "answer": "inserting"})))
for i in range(50):
    pubs["/joint_states"].publish(JointState(name=["x"], position=[float(i)], velocity=[0.0], effort=[0.0]))
tip = PoseStamped()
tip.header.frame_id = "ct"
tip.pose.position.x = 0.0625
pubs["/needle/tip"].publish(tip)
tf = TransformStamped()
tf.child_frame_id = "robot_base"
pubs["/registration/transform"].publish(tf)
pubs["/diagnostics"].publish(DiagnosticArray(status=[DiagnosticStatus(
    name="acus: check scan", values=[KeyValue(key="tip to target [mm]", value="0.875")])]))
pubs["/scans"].publish(s(json.dumps({"kind": "check", "series_dir": "out/check-1", "study_uid": "1.2.3",
                                     "series_uid": "1.2.3.4", "n": 1})))
pubs["/procedure/faults"].publish(s(json.dumps({"fault": "motion", "cause": "axis z: following error"})))
pubs["/procedure/state"].publish(s("Faulted"))
while True:
    rclpy.spin_once(node, timeout_sec=0.1)

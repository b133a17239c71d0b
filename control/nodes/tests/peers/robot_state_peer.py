"""rclpy peer: read the URDF from /robot_description (transient local: it was published before this process existed) and
some /joint_states; print one JSON line."""
import json
import sys
import time
import xml.etree.ElementTree as ET

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import String

rclpy.init()
node = rclpy.create_node("robot_state_peer")
description = []
states = []
latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
node.create_subscription(String, "/robot_description", lambda m: description.append(m.data), latched)
node.create_subscription(JointState, "/joint_states", lambda m: states.append(m), 10)
deadline = time.monotonic() + 30.0
while not description or len(states) < 3:
    if time.monotonic() > deadline:
        print(f"peer: description {'seen' if description else 'missing'}, {len(states)} joint states", file=sys.stderr)
        sys.exit(2)
    rclpy.spin_once(node, timeout_sec=0.1)

urdf = description[0]
robot = ET.fromstring(urdf)
print(json.dumps({
    "urdf": urdf,
    "robot": robot.get("name"),
    "movable_joints": [j.get("name") for j in robot.findall("joint") if j.get("type") != "fixed"],
    "joint_states": [{"name": list(m.name), "position": list(m.position)} for m in states[:3]],
}))
node.destroy_node()
rclpy.shutdown()

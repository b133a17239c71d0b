"""ROS 2 launch file for users with a full ROS 2 Jazzy install: the simulated acus system (emulated EtherCAT drives,
virtual CT scanner, the robot_state, registration, procedure and scanner nodes) with the same configuration as `acus sim`,
serving its ROS 2 interface instead of running the biopsy itself.

    ros2 launch launch/acus_sim.launch.py [config:=launch/config/sim.yaml] [seed:=1] [realtime:=false]

Then drive it as the operator: publish /estop/operator (std_msgs/Bool, false) and /deadman/operator (true) at 20 Hz, and call /procedure/scan,
/registration/register, /enable (std_srvs/SetBool), /plan, /align, /insert_step (until the answer ends in
"ready to confirm"), /confirm, /retract. Watch /joint_states, /needle/tip, /procedure/state and /diagnostics; RViz reads
/robot_description.

The nodes live in one process (the `acus` binary, built by `cargo build --release -p acus-launch`): the EtherCAT cycle
and the nodes share the motion supervisor in memory, as `acus sim` composes them.
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration

HERE = os.path.dirname(os.path.abspath(__file__))
ACUS = os.path.join(HERE, "..", "target", "release", "acus")


def generate_launch_description():
    config = LaunchConfiguration("config")
    seed = LaunchConfiguration("seed")
    realtime = LaunchConfiguration("realtime")
    common = [ACUS, "sim", "--serve", "--config", config, "--seed", seed]
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=os.path.join(HERE, "config", "sim.yaml")),
        DeclareLaunchArgument("seed", default_value="1"),
        DeclareLaunchArgument("realtime", default_value="false"),
        ExecuteProcess(cmd=common + ["--realtime"], output="screen", condition=IfCondition(realtime)),
        ExecuteProcess(cmd=common, output="screen", condition=UnlessCondition(realtime)),
    ])

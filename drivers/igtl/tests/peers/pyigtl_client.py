"""pyigtl (an independent OpenIGTLink implementation) as a client of the acus server: sends the entry and target as
POINTs and a STRING command, then waits for the server's TRANSFORM, STRING and IMAGE and prints them as one JSON line."""
import json
import sys

import numpy as np
import pyigtl

port = int(sys.argv[1])
client = pyigtl.OpenIGTLinkClient(host="127.0.0.1", port=port)
client.send_message(pyigtl.PointMessage(
    positions=[[10.0, -20.0, 30.0], [12.5, -25.0, 70.0]], names=["entry", "target"], device_name="plan"), wait=True)
client.send_message(pyigtl.StringMessage("insert", device_name="command"), wait=True)
out = {}
tip = client.wait_for_message("NeedleTip", timeout=20)
out["tip"] = tip.matrix.tolist() if tip is not None else None
reply = client.wait_for_message("reply", timeout=20)
out["reply"] = reply.string if reply is not None else None
image = client.wait_for_message("check_scan", timeout=20)
if image is not None:
    ijk = np.array([1.0, 2.0, 3.0, 1.0])
    out["voxel_ras"] = (image.ijk_to_world_matrix @ ijk)[:3].tolist()
    out["voxel_value"] = int(image.image[3, 2, 1])  # pyigtl: image[k, j, i]
    out["shape"] = list(image.image.shape)
else:
    out["voxel_ras"] = None
print(json.dumps(out))
client.stop()

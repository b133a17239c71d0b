"""Independent master (SOEM via pysoem): enumerate the emulated drives, read identity from SII and
by SDO (0x1018), map PDOs, take them to OP. Prints one JSON object on stdout.

Usage: python pysoem_probe.py IFACE
"""
import json
import sys

import pysoem


def main() -> int:
    iface = sys.argv[1]
    master = pysoem.Master()
    master.open(iface)
    try:
        found = master.config_init()
        drives = []
        for s in master.slaves:
            vendor = int.from_bytes(s.sdo_read(0x1018, 1), "little")
            product = int.from_bytes(s.sdo_read(0x1018, 2), "little")
            serial = int.from_bytes(s.sdo_read(0x1018, 4), "little")
            drives.append({
                "name": s.name, "sii_vendor": s.man, "sii_product": s.id, "sii_revision": s.rev,
                "sdo_vendor": vendor, "sdo_product": product, "sdo_serial": serial,
            })
        iomap = master.config_map()
        safeop = master.state_check(pysoem.SAFEOP_STATE, 2_000_000)
        master.state = pysoem.OP_STATE
        master.send_processdata()
        master.receive_processdata(2000)
        master.write_state()
        state = 0
        for _ in range(200):
            master.send_processdata()
            master.receive_processdata(2000)
            state = master.state_check(pysoem.OP_STATE, 5000)
            if state == pysoem.OP_STATE:
                break
        wkc_expected = master.expected_wkc
        master.send_processdata()
        wkc = master.receive_processdata(2000)
        states = []
        master.read_state()
        for s in master.slaves:
            states.append(s.state)
        print(json.dumps({
            "found": found, "drives": drives, "iomap_bytes": iomap, "safeop": safeop,
            "op": state, "slave_states": states, "wkc": wkc, "wkc_expected": wkc_expected,
        }))
        master.state = pysoem.INIT_STATE
        master.write_state()
    finally:
        master.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Modbus TCP interop server on pymodbus (another stack than flowd's), for e2e tests.

Unit 1 serves fixed values, encoded here with Python's struct module, in
four byte/word orders. Holding and input registers have the same layout;
for order o (0 ABCD, 1 CDAB, 2 BADC, 3 DCBA), from address 100*o:

  +0 uint16, +1 int16, +2 uint32, +4 int32, +6 uint64, +10 int64,
  +14 float32, +16 float64, +20 string (12 characters, 6 registers)

Coils 0-15 and discrete inputs 0-15 hold COILS and DISCRETE. Holding
register 500 exists but every read of it answers exception 6 (server
busy); any other address answers exception 2 (illegal data address).

Every request received is appended to --log as one JSON line
{"fn": function code, "addr": address, "qty": count, "unit": unit id}.
"""

import argparse
import asyncio
import json
import struct

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

VALUES = {
    "uint16": ("H", 51234),
    "int16": ("h", -12345),
    "uint32": ("I", 3000000000),
    "int32": ("i", -2000000001),
    "uint64": ("Q", 12345678901234567890),
    "int64": ("q", -98765432109876543),
    "float32": ("f", -1234.5),
    "float64": ("d", 3.141592653589793),
}
OFFSETS = {"uint16": 0, "int16": 1, "uint32": 2, "int32": 4, "uint64": 6, "int64": 10, "float32": 14, "float64": 16}
STRING = b"pymodbus-42!"
COILS = [True, False, True, True, False, False, True, False, False, True, False, False, False, False, True, True]
DISCRETE = [False, True, True, False, True, False, False, True, True, True, False, True, False, False, False, True]
BUSY = 500


def area(order):
    """The 26 registers of one order's area."""
    word_le, byte_le = order in (1, 3), order in (2, 3)
    regs = [0] * 26

    def put(off, raw):
        words = [raw[i:i + 2] for i in range(0, len(raw), 2)]
        if word_le:
            words.reverse()
        for i, w in enumerate(words):
            if byte_le:
                w = w[::-1]
            regs[off + i] = int.from_bytes(w, "big")

    for name, (fmt, value) in VALUES.items():
        put(OFFSETS[name], struct.pack(">" + fmt, value))
    for i in range(6):  # characters in register order: word order does not apply
        w = STRING[2 * i:2 * i + 2]
        regs[20 + i] = int.from_bytes(w[::-1] if byte_le else w, "big")
    return regs


def registers():
    blocks = [SimData(address=100 * o, values=area(o), datatype=DataType.REGISTERS) for o in range(4)]
    return blocks


async def busy(function_code, start_address, address, count, current_registers, set_values):
    if function_code == 3 and address <= BUSY < address + count:
        return ExcCodes.DEVICE_BUSY
    return None


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    log = open(args.log, "a", buffering=1)

    def trace(sending, pdu):
        if not sending:
            log.write(json.dumps({"fn": pdu.function_code, "addr": getattr(pdu, "address", 0),
                                  "qty": getattr(pdu, "count", 0), "unit": pdu.dev_id}) + "\n")
        return pdu

    hr = registers() + [SimData(address=BUSY, values=[0], datatype=DataType.REGISTERS)]
    device = SimDevice(
        id=1,
        simdata=(
            [SimData(address=0, values=COILS, datatype=DataType.BITS)],
            [SimData(address=0, values=DISCRETE, datatype=DataType.BITS)],
            hr,
            registers(),
        ),
        action=busy,
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", args.port), trace_pdu=trace)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

"""The device side of bitpath on the host: build/flash the firmware, emulate the board, talk to it.

- `bitpath.device.client`: the MLPerf Tiny / EEMBC serial protocol over any pyserial URL.
- `bitpath.device.emulate`: QEMU netduinoplus2 (STM32F405) with the UART on a local TCP port.
- `bitpath.device.build`: `pio run` for each board, offline through the local platform.
"""

from bitpath.device.client import (
    Client,
    DeviceError,
    DeviceInfo,
    InferResult,
    LayerCosts,
    ProtocolError,
    Reply,
)

__all__ = [
    "Client",
    "DeviceError",
    "DeviceInfo",
    "InferResult",
    "LayerCosts",
    "ProtocolError",
    "Reply",
]

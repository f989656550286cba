"""Python mirror of firmware/testmodel/bp_testmodel.c (the deterministic TEST model, not a network).

The firmware's logits, chosen path and layer structure are checked against this, exactly.
"""

from __future__ import annotations

INPUT_BYTES = 784
CLASSES = 10
PATHS = 3
LAYERS = 3
WIDTH = 16


def controller(x: bytes) -> int:
    return (sum(x[:28]) + x[INPUT_BYTES - 1]) % PATHS


def run(x: bytes, path: int | None) -> tuple[list[int], int]:
    """Logits and the path that ran; path None means the controller chooses."""
    if len(x) != INPUT_BYTES:
        raise ValueError(f"the test model takes {INPUT_BYTES} bytes, got {len(x)}")
    if path is None:
        path = controller(x)
    if not 0 <= path < PATHS:
        raise ValueError(f"path {path} out of range")
    s = [0] * WIDTH
    for i, v in enumerate(x):
        s[i % WIDTH] += v * ((i // WIDTH) % 7 + 1)
    t = list(s)
    for _ in range(2 * (path + 1)):
        # Python's >> floors like the C arithmetic shift the model asserts.
        t = [(3 * t[j] + t[(j + 1) % WIDTH] - t[(j + 5) % WIDTH]) >> 2 for j in range(WIDTH)]
    logits = []
    for c in range(CLASSES):
        logits.append(sum(t[j] * ((((WIDTH * c + j) * 37 + 11 * path) % 17) - 8) for j in range(WIDTH)))
    for v in logits:
        assert -(2**31) <= v < 2**31, "test model left int32"
    return logits, path

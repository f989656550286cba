"""Build the firmware's hardware-free C (protocol + test model) for the host with gcc."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NATIVE = Path(__file__).resolve().parent / "native"
SOURCES = [
    ROOT / "firmware" / "src" / "protocol.c",
    ROOT / "firmware" / "testmodel" / "bp_testmodel.c",
    NATIVE / "fake_board.c",
]
INCLUDES = [ROOT / "firmware" / "include", ROOT / "firmware" / "src", ROOT / "kernels" / "include", NATIVE]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
WARN = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes"]


def build(main: str, out_dir: Path, *, defines: tuple[str, ...] = (), sanitize: bool = True) -> Path:
    """Compile NATIVE/<main> with the shared sources; cached by content hash. Returns the binary."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc not found (apt-get install gcc)")
    srcs = [*SOURCES, NATIVE / main]
    headers = sorted(p for d in INCLUDES for p in d.glob("*.h"))
    flags = [*WARN, "-O1", "-g", *(SANITIZE if sanitize else []), *(f"-D{d}" for d in defines)]
    h = hashlib.sha256(" ".join(flags).encode())
    for p in [*srcs, *headers]:
        h.update(p.read_bytes())
    exe = out_dir / f"{Path(main).stem}-{h.hexdigest()[:12]}"
    if not exe.exists():
        cmd = [gcc, *flags, *(f"-I{d}" for d in INCLUDES), *map(str, srcs), "-o", str(exe)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"native build failed:\n{' '.join(cmd)}\n{proc.stderr}")
    return exe

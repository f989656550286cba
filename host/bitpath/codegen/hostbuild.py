"""Compile a generated ``model.c`` with the firmware runtime and the kernels for the host (cffi API
mode, -Wall -Wextra -Werror), so the exact C that runs on the board can be checked on the host."""

from __future__ import annotations

import hashlib
import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bitpath.ckernels.build import kernels_dir, sources

CDEF = """
typedef struct { int32_t path; uint32_t controller_cycles; uint32_t layer_cycles[64]; } bp_run_info_t;
int bp_host_run(int32_t path, const uint8_t *input, int32_t input_len, int32_t *logits, bp_run_info_t *info);
int bp_host_run_timed(int32_t path, const uint8_t *input, int32_t input_len, int32_t *logits, bp_run_info_t *info);
int32_t bp_host_num_layers(void);
int32_t bp_host_num_classes(void);
int32_t bp_host_num_paths(void);
int32_t bp_host_input_bytes(void);
int32_t bp_host_arena_bytes(void);
int32_t bp_host_has_controller(void);
const char *bp_host_ir_hash(void);
int32_t bp_runtime_choose(const int32_t *scores, const int32_t *penalty, const int8_t *order, int32_t num_paths);
int32_t bp_runtime_top2(const int32_t *logits, int32_t n, int64_t *margin);
"""

GLUE = """
#include "bp_model.h"
#include "bp_runtime.h"
int bp_host_run(int32_t path, const uint8_t *input, int32_t input_len, int32_t *logits, bp_run_info_t *info) {
    return (int)bp_model.run(path, input, input_len, logits, info, NULL);
}
/* A stand-in clock for the host: every read advances one tick, so each timed span is positive. */
static uint32_t bp_host_ticks;
static uint32_t bp_host_clock(void) { return ++bp_host_ticks; }
int bp_host_run_timed(int32_t path, const uint8_t *input, int32_t input_len, int32_t *logits, bp_run_info_t *info) {
    return (int)bp_model.run(path, input, input_len, logits, info, bp_host_clock);
}
int32_t bp_host_num_layers(void) { return bp_model.num_layers; }
int32_t bp_host_num_classes(void) { return bp_model.num_classes; }
int32_t bp_host_num_paths(void) { return bp_model.num_paths; }
int32_t bp_host_input_bytes(void) { return bp_model.input_bytes; }
int32_t bp_host_arena_bytes(void) { return bp_model.arena_bytes; }
int32_t bp_host_has_controller(void) { return bp_model.has_controller; }
const char *bp_host_ir_hash(void) { return bp_model.ir_hash; }
"""

CFLAGS = ["-std=c11", "-O2", "-fno-wrapv", "-Wall", "-Wextra", "-Werror"]


def firmware_dir() -> Path:
    return kernels_dir().parent / "firmware"


class HostModel:
    """A generated model compiled for the host; ``run`` returns the int32 logits."""

    def __init__(self, module: Any) -> None:
        self.ffi, self.lib = module.ffi, module.lib
        self.num_classes = int(self.lib.bp_host_num_classes())
        self.num_paths = int(self.lib.bp_host_num_paths())
        self.input_bytes = int(self.lib.bp_host_input_bytes())
        self.arena_bytes = int(self.lib.bp_host_arena_bytes())
        self.has_controller = bool(self.lib.bp_host_has_controller())
        self.num_layers = int(self.lib.bp_host_num_layers())

    def _call(self, x: np.ndarray, path: int, timed: bool = False):
        """One ``bp_model.run`` (without a clock, or with the ticking stand-in): its info and logits."""
        xb = np.ascontiguousarray(x, dtype=np.uint8).ravel()
        logits = self.ffi.new("int32_t[]", self.num_classes)
        info = self.ffi.new("bp_run_info_t *")
        run = self.lib.bp_host_run_timed if timed else self.lib.bp_host_run
        st = run(path, self.ffi.from_buffer(xb), xb.size, logits, info)
        if st != 0:
            raise RuntimeError(f"generated model returned status {st} on path {path}")
        return info, np.frombuffer(self.ffi.buffer(logits), dtype=np.int32).astype(np.int64)

    def _run(self, x: np.ndarray, path: int) -> tuple[int, np.ndarray]:
        info, logits = self._call(x, path)
        return int(info.path), logits

    def run_timed(self, x: np.ndarray, path: int) -> tuple[int, np.ndarray, int, list[int]]:
        """One run under a stand-in clock that advances one tick per read: the path that ran, its logits,
        the controller's ticks and the per-layer ticks (to check how the model splits its costs)."""
        info, logits = self._call(x, path, timed=True)
        return (int(info.path), logits, int(info.controller_cycles),
                [int(c) for c in info.layer_cycles[0:self.num_layers]])

    def top2(self, logits) -> tuple[int, int]:
        """``bp_runtime_top2`` on one row of int32 logits: (top, margin); top is -1 on bad arguments."""
        margin = self.ffi.new("int64_t *")
        top = self.lib.bp_runtime_top2(self.ffi.new("int32_t[]", [int(v) for v in logits]), len(logits), margin)
        return int(top), int(margin[0])

    def run(self, x: np.ndarray, path: int) -> np.ndarray:
        """Int32 logits (as int64) of one image on a forced path."""
        return self._run(x, path)[1]

    def run_auto(self, x: np.ndarray) -> tuple[int, np.ndarray]:
        """Let the generated controller choose (``BP_PATH_AUTO``): the chosen path and its logits."""
        if not self.has_controller:
            raise RuntimeError("this generated model has no controller")
        return self._run(x, -1)


def build_host_model(model_c: Path, variant: str = "ref", cache: Path | None = None) -> HostModel:
    """Compile ``model_c`` + firmware/runtime + kernels (``variant``) and load it."""
    from cffi import FFI

    kdir, fdir = kernels_dir(), firmware_dir()
    srcs = [Path(model_c).resolve(), fdir / "runtime" / "bp_runtime.c", *sources(kdir, variant)]
    includes = [kdir / "include", fdir / "include", fdir / "runtime"]
    h = hashlib.sha256(variant.encode())
    for p in srcs + sorted(q for d in includes for q in d.glob("*.h")):
        h.update(p.read_bytes())
    name = f"_bp_model_{h.hexdigest()[:16]}"
    out = Path(cache or tempfile.gettempdir()) / "bitpath-hostmodels"
    out.mkdir(parents=True, exist_ok=True)
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(name, GLUE, sources=[str(p) for p in srcs], include_dirs=[str(d) for d in includes],
                   extra_compile_args=CFLAGS)
    lib_path = Path(ffi.compile(tmpdir=str(out / name)))
    spec = importlib.util.spec_from_file_location(name, lib_path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return HostModel(mod)

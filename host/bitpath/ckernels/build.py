"""Compile kernels/ into a cffi API-mode extension (out of line), cached by a hash of the sources."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

MODULE = "_bp_kernels"
# "ref": the portable kernels (src/ref). "dsp": the ARMv7E-M variants (src/opt/dsp) replacing the
# portable file of the same name, compiled for the host with bp_dsp.h's portable C intrinsics, so the
# optimized algorithms are checked bit for bit here too (on the board they are real DSP instructions).
VARIANTS = {"ref": (), "dsp": ("opt/dsp",)}

CDEF = """
typedef enum {
    BP_OK = 0, BP_ERR_ARG = -1, BP_ERR_BITS = -2, BP_ERR_SHAPE = -3,
    BP_ERR_QUANT = -4, BP_ERR_BUFFER = -5, BP_ERR_ACC_RANGE = -6
} bp_status_t;
typedef struct { int32_t n; int32_t h; int32_t w; int32_t c; } bp_dims_t;
typedef struct { int32_t bits; int32_t is_signed; } bp_act_t;
typedef struct {
    bp_act_t in; bp_act_t out; int32_t w_stored; int32_t w_view; int32_t act_min; int32_t act_max; int32_t w_round;
} bp_quant_t;
typedef struct { const int32_t *multiplier; const int32_t *shift; } bp_requant_t;
typedef struct {
    int32_t stride_h; int32_t stride_w; int32_t pad_top; int32_t pad_bottom; int32_t pad_left; int32_t pad_right;
} bp_window_t;
typedef struct { void *buf; int32_t size; } bp_context_t;

int32_t bp_conv2d_get_buffer_size(const bp_dims_t *filter_dims);
bp_status_t bp_conv2d(const bp_context_t *ctx, const bp_window_t *win, const bp_quant_t *q,
    const bp_requant_t *rq, const bp_dims_t *input_dims, const uint8_t *input,
    const bp_dims_t *filter_dims, const uint8_t *filter, const int32_t *bias,
    const bp_dims_t *output_dims, void *output);
bp_status_t bp_depthwise_conv2d(const bp_window_t *win, const bp_quant_t *q, const bp_requant_t *rq,
    const bp_dims_t *input_dims, const uint8_t *input, const bp_dims_t *filter_dims,
    const uint8_t *filter, const int32_t *bias, const bp_dims_t *output_dims, void *output);
bp_status_t bp_fully_connected(const bp_quant_t *q, const bp_requant_t *rq, int32_t batches,
    int32_t in_features, int32_t out_features, const uint8_t *input, const uint8_t *filter,
    const int32_t *bias, void *output);
bp_status_t bp_max_pool2d(const bp_window_t *win, const bp_act_t *fmt, int32_t kernel_h, int32_t kernel_w,
    const bp_dims_t *input_dims, const uint8_t *input, const bp_dims_t *output_dims, uint8_t *output);
bp_status_t bp_avg_pool2d(const bp_window_t *win, const bp_act_t *fmt, int32_t kernel_h, int32_t kernel_w,
    const bp_dims_t *input_dims, const uint8_t *input, const bp_dims_t *output_dims, uint8_t *output);
bp_status_t bp_add(const bp_act_t *a_fmt, const uint8_t *a, const bp_act_t *b_fmt, const uint8_t *b,
    int32_t mult_a, int32_t mult_b, int32_t shift, const bp_act_t *out_fmt, int32_t act_min,
    int32_t act_max, int32_t rows, int32_t count, uint8_t *output);
bp_status_t bp_requantize(const int32_t *acc, int32_t rows, int32_t channels, const bp_requant_t *rq,
    const bp_act_t *out_fmt, int32_t act_min, int32_t act_max, uint8_t *output);
"""

CFLAGS = ["-std=c11", "-O2", "-fno-wrapv", "-Wall", "-Wextra", "-Werror"]


def kernels_dir() -> Path:
    """The repository's kernels/ folder (override with BITPATH_KERNELS_DIR)."""
    env = os.environ.get("BITPATH_KERNELS_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "kernels"
    if not (path / "include" / "bp_kernels.h").is_file():
        raise FileNotFoundError(
            f"bitpath kernels not found at {path}: install bitpath from a source checkout "
            "(pip install -e .) or set BITPATH_KERNELS_DIR to the kernels/ folder"
        )
    return path


def sources(kdir: Path, variant: str = "ref") -> list[Path]:
    """The C files of a variant: src/ref/*.c, each replaced by the variant's file of the same name."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
    files = {p.name: p for p in (kdir / "src" / "ref").glob("*.c")}
    for sub in VARIANTS[variant]:
        for p in (kdir / "src" / sub).glob("*.c"):
            if p.name not in files:
                raise ValueError(f"{p}: an optimized kernel must replace a portable one of the same name")
            files[p.name] = p
    return sorted(files.values(), key=lambda p: p.name)


def _snapshot(kdir: Path, variant: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The headers and C files of a variant, each read once: (name -> bytes) for include/ and src."""
    headers = {p.name: p.read_bytes() for p in sorted((kdir / "include").glob("*.h"))}
    return headers, {p.name: p.read_bytes() for p in sources(kdir, variant)}


def _hash(variant: str, headers: dict[str, bytes], srcs: dict[str, bytes]) -> str:
    h = hashlib.sha256(variant.encode())
    for name, data in [*headers.items(), *srcs.items()]:
        h.update(name.encode())
        h.update(data)
    h.update(CDEF.encode())
    h.update(" ".join(CFLAGS).encode())
    h.update((sysconfig.get_config_var("EXT_SUFFIX") or "").encode())
    return h.hexdigest()[:16]


def source_hash(kdir: Path, variant: str = "ref") -> str:
    """Hash of everything that goes into the extension: sources, headers, cdef, flags, Python ABI."""
    return _hash(variant, *_snapshot(kdir, variant))


def cache_dir() -> Path:
    base = os.environ.get("BITPATH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "bitpath"
    )
    return Path(base) / "ckernels"


def build(variant: str = "ref", verbose: bool = False) -> Path:
    """Compile a kernel variant (if not cached) and return the path of its extension module."""
    from cffi import FFI  # imported here: only building needs the compiler side of cffi

    kdir = kernels_dir()
    # One read of every file: the module is compiled from these bytes (copied below), so its cache
    # name always matches what it was built from, even if a source changes during the build.
    headers, srcs = _snapshot(kdir, variant)
    out = cache_dir() / _hash(variant, headers, srcs)
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    module = f"{MODULE}_{variant}"
    target = out / f"{module}{suffix}"
    if target.is_file():
        return target
    out.mkdir(parents=True, exist_ok=True)
    # Build in a private folder and move the result into place atomically, so concurrent
    # first uses (pytest workers, two shells) never see a half-written module.
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        snap = Path(tmp) / "kernels"
        for sub, files in (("include", headers), ("src", srcs)):
            (snap / sub).mkdir(parents=True)
            for name, data in files.items():
                (snap / sub / name).write_bytes(data)
        ffi = FFI()
        ffi.cdef(CDEF)
        ffi.set_source(
            module,
            '#include "bp_kernels.h"\n',
            sources=[str(snap / "src" / name) for name in srcs],
            include_dirs=[str(snap / "include")],
            extra_compile_args=CFLAGS,
        )
        built = Path(ffi.compile(tmpdir=tmp, verbose=verbose))
        staged = out / f".{module}.{os.getpid()}{suffix}"
        shutil.copyfile(built, staged)
        os.replace(staged, target)
    return target


def load_module(variant: str = "ref", verbose: bool = False) -> ModuleType:
    """Build if needed and import a variant's extension module."""
    path = build(variant, verbose=verbose)
    name = f"bitpath.ckernels.{MODULE}_{variant}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the kernel module from {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules[name] = mod
    return mod

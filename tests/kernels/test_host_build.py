"""The host build of the kernels (cffi, cached by a hash of the sources it compiles)."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import cffi
import pytest

build = importlib.import_module("bitpath.ckernels.build")  # the package exports the function build()


def test_a_source_edited_during_the_build_does_not_enter_the_cached_module(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # A module cached under the hash of one version of the sources must be built from exactly that
    # version, even when a file changes between the hash and the compile (an editor saving while the
    # tests run): before, the compile read the files again and cached the edit under the old name.
    kdir = tmp_path / "kernels"
    shutil.copytree(build.kernels_dir(), kdir)
    monkeypatch.setenv("BITPATH_KERNELS_DIR", str(kdir))
    monkeypatch.setenv("BITPATH_CACHE", str(tmp_path / "cache"))
    expected = build.source_hash(kdir, "ref")
    compile_ = cffi.FFI.compile

    def compile_after_an_edit(self, *args, **kwargs):
        with open(kdir / "src" / "ref" / "bp_add.c", "a") as f:
            f.write("\n#error edited during the build\n")
        return compile_(self, *args, **kwargs)

    monkeypatch.setattr(cffi.FFI, "compile", compile_after_an_edit)
    path = build.build("ref")
    assert path.parent == tmp_path / "cache" / "ckernels" / expected
    # the edit is seen by the next build, under its own name (and fails to compile there)
    monkeypatch.setattr(cffi.FFI, "compile", compile_)
    assert build.source_hash(kdir, "ref") != expected
    with pytest.raises(Exception, match=r"bp_add\.c"):  # the compiler error (#error) names the file
        build.build("ref")

"""The IR's view rounding (header.layers[].w_round, version 2): saved and loaded, refused when
malformed or in a version-1 file, and version-1 files still read as floor."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_ir import tiny_ir

from bitpath import ir as irmod
from bitpath.export.runner import Runner

WEIGHTED = ("conv1", "dw2", "pw2", "fc")


def _saved(ir: irmod.IR, tmp_path, name: str = "m.bpir.npz") -> irmod.IR:
    ir.save(tmp_path / name)
    return irmod.load(tmp_path / name)


def test_w_round_survives_save_and_load(tmp_path) -> None:
    back = _saved(tiny_ir(w_round=True), tmp_path)
    assert [irmod.w_round(back, n) for n in WEIGHTED] == [True] * 4
    assert irmod.layer_quant(back, 1, "pw2").w_round is True
    floor = _saved(tiny_ir(), tmp_path, "f.bpir.npz")
    assert [irmod.w_round(floor, n) for n in WEIGHTED] == [False] * 4


def test_version_1_file_reads_as_floor(tmp_path) -> None:
    old = tiny_ir()
    old.header["version"] = 1
    back = _saved(old, tmp_path)
    x = np.random.default_rng(0).integers(0, 256, (8, 8, 1)).astype(np.uint8)
    np.testing.assert_array_equal(Runner(back).run(x, 1), Runner(tiny_ir(w_round=False)).run(x, 1))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda h: h["layers"]["pw2"].__setitem__("w_round", 1), r"layer 'pw2': field 'w_round' must be true or false"),
        (lambda h: h["layers"]["fc"].__setitem__("w_round", "yes"), r"layer 'fc': field 'w_round' must be"),
        (lambda h: h.__setitem__("version", 1), r"layer 'conv1': field 'w_round' needs IR version 2"),
        (lambda h: h.__setitem__("version", 3), r"field 'version': this reader understands versions 1, 2, got 3"),
    ],
)
def test_malformed_rounding_refused_by_name(tmp_path, mutate, match) -> None:
    bad = tiny_ir(w_round=True)
    mutate(bad.header)
    with pytest.raises(irmod.IRError, match=match):
        _saved(bad, tmp_path)

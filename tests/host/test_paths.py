"""The bit-path table: defaults, JSON, and errors that name the path, layer and field."""

from __future__ import annotations

import json

import pytest

from bitpath.models import build, capture
from bitpath.train.paths import PathTable, PathTableError, default_table


@pytest.fixture(scope="module")
def cnn():
    return capture(*build("default-cnn", 10))


def test_default_table(cnn):
    t = default_table(cnn)
    assert t.names == ["w8a8", "w4a4", "w2a2-fl8", "mixed"]
    lb = t.paths[2].layer_bits()
    assert lb["conv1"] == (8, 8) and lb["fc2"] == (8, 8) and lb["conv2"] == (2, 2)
    assert t.stored_bits() == {n: 8 for n in cnn.layer_names}
    assert t.widest(cnn) == 0 and t.narrowest(cnn) == 2
    for name in ("resnet8", "ds-cnn"):
        spec = capture(*build(name, 10))
        assert len(default_table(spec)) == 4


def test_json_table(cnn, tmp_path):
    p = tmp_path / "paths.json"
    p.write_text(json.dumps({"paths": [{"name": "a", "default": [4, 4], "first": [8, 8], "layers": {"fc1": [2, 4]}},
                                       {"name": "b", "default": [8, 8]}]}))
    t = PathTable.load(p, cnn)
    assert t.paths[0].layer_bits()["fc1"] == (2, 4) and t.stored_bits()["fc1"] == 8
    assert t.view_bits()["fc1"] == (2, 8)


@pytest.mark.parametrize(
    "table, match",
    [
        ({"paths": [{"name": "x", "layers": {"nope": [8, 8]}}]}, r"path 0 \('x'\): layer 'nope' is not a weighted"),
        ({"paths": [{"name": "x", "default": [3, 8]}]}, r"'x'\): default: widths must be in"),
        ({"paths": [{"name": "x", "default": [4, 4]}]}, r"path 'x': layer 'conv1' reads the uint8 network input"),
        ({"paths": [{"name": "x"}, {"name": "x"}]}, r"path names must be unique"),
        ({"paths": []}, r"at least one path"),
        ({"paths": [{"name": "x", "bits": 1}]}, r"unknown keys \['bits'\]"),
    ],
)
def test_bad_tables(cnn, table, match):
    with pytest.raises(PathTableError, match=match):
        PathTable.from_dict(table, cnn)


def test_residual_fanout_conflict_named():
    spec = capture(*build("resnet8", 10))
    bad = {"paths": [{"name": "x", "default": [8, 8], "layers": {"block2.conv1": [8, 4]}}]}
    with pytest.raises(PathTableError, match=r"tensor 'add' is read at .* by 'block2\.(conv1|shortcut\.0)'"):
        PathTable.from_dict(bad, spec)

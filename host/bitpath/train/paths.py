"""The bit-path table: K whole-network assignments of per-layer ``(w_bits, a_bits)``.

``a_bits`` is the width of the layer's *input* activations (the ``a`` of a kernel named
``a8w4``); the layer that reads the uint8 network input must have ``a_bits = 8``.

JSON form (``--paths FILE``)::

    {"paths": [
      {"name": "w8a8", "default": [8, 8]},
      {"name": "w2a2-fl8", "default": [2, 2], "first": [8, 8], "last": [8, 8]},
      {"name": "custom", "default": [4, 4], "first": [8, 8], "layers": {"fc1": [2, 4]}}
    ]}

``first``/``last`` apply to the first/last weighted layer, ``layers`` overrides by name (the
torch module path, e.g. ``block1.conv1``); later entries win.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bitpath.models.graph import GraphError, GraphSpec, tensor_formats

BITS = (2, 4, 8)


class PathTableError(ValueError):
    """A bit-path table that does not fit the model."""


@dataclass(frozen=True)
class BitPath:
    """One resolved path: name and ``(w_bits, a_bits)`` per weighted layer, in graph order."""

    name: str
    bits: tuple[tuple[str, int, int], ...]

    def layer_bits(self) -> dict[str, tuple[int, int]]:
        return {n: (w, a) for n, w, a in self.bits}

    def to_dict(self) -> dict:
        return {"name": self.name, "layers": {n: [w, a] for n, w, a in self.bits}}


@dataclass(frozen=True)
class PathTable:
    """K bit-paths over the same network."""

    paths: tuple[BitPath, ...]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.paths]

    def index(self, name: str) -> int:
        if name not in self.names:
            raise PathTableError(f"no path named {name!r}; paths are {self.names}")
        return self.names.index(name)

    def stored_bits(self) -> dict[str, int]:
        """Widest weight width any path uses, per layer (the nested storage width)."""
        out: dict[str, int] = {}
        for p in self.paths:
            for n, w, _ in p.bits:
                out[n] = max(out.get(n, 0), w)
        return out

    def view_bits(self) -> dict[str, tuple[int, ...]]:
        out: dict[str, set] = {}
        for p in self.paths:
            for n, w, _ in p.bits:
                out.setdefault(n, set()).add(w)
        return {n: tuple(sorted(v)) for n, v in out.items()}

    def cost(self, spec: GraphSpec, i: int) -> int:
        """BitOPs of path ``i``: sum over layers of MACs * w_bits * a_bits."""
        lb = self.paths[i].layer_bits()
        return sum(spec.macs(n) * lb[n.name][0] * lb[n.name][1] for n in spec.weighted)

    def widest(self, spec: GraphSpec) -> int:
        return max(range(len(self)), key=lambda i: (self.cost(spec, i), -i))

    def narrowest(self, spec: GraphSpec) -> int:
        return min(range(len(self)), key=lambda i: (self.cost(spec, i), i))

    def to_dict(self) -> dict:
        return {"paths": [p.to_dict() for p in self.paths]}

    @classmethod
    def from_dict(cls, d: dict, spec: GraphSpec, where: str = "path table") -> PathTable:
        if not isinstance(d, dict) or not isinstance(d.get("paths"), list) or not d["paths"]:
            raise PathTableError(f"{where}: expected {{\"paths\": [ ... ]}} with at least one path")
        paths = tuple(resolve(p, spec, f"{where}: path {i}") for i, p in enumerate(d["paths"]))
        return cls(paths)._checked(spec, where)

    @classmethod
    def load(cls, path: str | Path, spec: GraphSpec) -> PathTable:
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise PathTableError(f"{p}: cannot read the path table as JSON ({e})") from e
        return cls.from_dict(d, spec, str(p))

    def _checked(self, spec: GraphSpec, where: str) -> PathTable:
        names = self.names
        if len(set(names)) != len(names):
            raise PathTableError(f"{where}: path names must be unique, got {names}")
        for p in self.paths:
            try:
                tensor_formats(spec, p.layer_bits())
            except GraphError as e:
                raise PathTableError(f"{where}: path {p.name!r}: {e}") from e
        return self


def _bits_pair(v, where: str) -> tuple[int, int]:
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(b, int) for b in v)):
        raise PathTableError(f"{where}: expected [w_bits, a_bits], got {v!r}")
    w, a = v
    if w not in BITS or a not in BITS:
        raise PathTableError(f"{where}: widths must be in {BITS}, got [{w}, {a}]")
    return w, a


def resolve(p: dict, spec: GraphSpec, where: str) -> BitPath:
    """Resolve one JSON path entry against the model's weighted layers."""
    if not isinstance(p, dict) or not isinstance(p.get("name"), str):
        raise PathTableError(f"{where}: each path needs a string 'name'")
    where = f"{where} ({p['name']!r})"
    unknown = set(p) - {"name", "default", "first", "last", "layers"}
    if unknown:
        raise PathTableError(f"{where}: unknown keys {sorted(unknown)}")
    layers = spec.layer_names
    bits = {n: _bits_pair(p.get("default", [8, 8]), f"{where}: default") for n in layers}
    if "first" in p:
        bits[layers[0]] = _bits_pair(p["first"], f"{where}: first")
    if "last" in p:
        bits[layers[-1]] = _bits_pair(p["last"], f"{where}: last")
    for name, v in (p.get("layers") or {}).items():
        if name not in bits:
            raise PathTableError(f"{where}: layer {name!r} is not a weighted layer of the model; layers are {layers}")
        bits[name] = _bits_pair(v, f"{where}: layers.{name}")
    return BitPath(p["name"], tuple((n, *bits[n]) for n in layers))


def default_table_dict(spec: GraphSpec) -> dict:
    """Four paths: all-8, all-4 (first layer reads the 8-bit input), 2-bit with first/last at 8, a mixed one.

    The mixed path keeps the first layer at 8/8, runs the first half of the middle layers at
    w4a4 and the rest at w2a4, and the last layer at w8a4 (activations stay 4-bit everywhere after
    the first layer, so residual fan-outs never disagree).
    """
    layers = spec.layer_names
    middle = layers[1:-1]
    half = (len(middle) + 1) // 2
    mixed_layers = {n: [4, 4] for n in middle[:half]} | {n: [2, 4] for n in middle[half:]}
    return {
        "paths": [
            {"name": "w8a8", "default": [8, 8]},
            {"name": "w4a4", "default": [4, 4], "first": [4, 8]},
            {"name": "w2a2-fl8", "default": [2, 2], "first": [8, 8], "last": [8, 8]},
            {"name": "mixed", "default": [4, 4], "first": [8, 8], "last": [8, 4], "layers": mixed_layers},
        ]
    }


def default_table(spec: GraphSpec) -> PathTable:
    return PathTable.from_dict(default_table_dict(spec), spec, "default path table")

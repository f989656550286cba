"""`bitpath bench` against a fake device that drops bytes, garbles replies, resets or dies mid-run:
the results are complete and equal to a clean run's, nothing is lost, and --resume continues."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fakes import FakeDevice, FakePort, Faults, dataset, tiny_ir  # noqa: E402

from bitpath.bench.boards import profile  # noqa: E402
from bitpath.bench.link import BenchClient  # noqa: E402
from bitpath.bench.results import from_log  # noqa: E402
from bitpath.bench.run import Bench, BenchConfig, BenchError, ResultLog  # noqa: E402
from bitpath.export.runner import Runner  # noqa: E402

IR = tiny_ir()
X, Y = dataset(IR, 12)
KEYS = ("i", "label", "path", "chosen", "logits", "pred", "match", "controller", "layers", "total")


def bench(dev: FakeDevice, log: Path, *, images: int = 12, resume: bool = False, retries: int = 6,
          paths=None) -> Bench:
    client = BenchClient("fake://", port=FakePort(dev), timeout=0.2, infer_timeout=0.5, quiet=0.02)
    return Bench(client, IR, X, Y, log, profile=profile("qemu_f405"), resume=resume,
                 config=BenchConfig(images=images, retries=retries, paths=paths), log=lambda s: None)


def measured(log: Path) -> list[dict]:
    _, recs = ResultLog.read(log)
    return sorted(({k: r[k] for k in KEYS} for r in recs if r["kind"] == "m"), key=lambda r: (r["i"], r["path"]))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    log = tmp_path_factory.mktemp("clean") / "bench.jsonl"
    bench(FakeDevice(IR), log).run()
    return measured(log)


def test_clean_run_is_complete_and_bit_exact(clean: list[dict]) -> None:
    runner = Runner(IR)
    assert len(clean) == 12 * 3  # two static paths + auto (the fake has a controller)
    for r in clean:
        assert r["match"] and r["logits"] == runner.run(X[r["i"]], r["chosen"]).tolist()
        assert r["chosen"] == (int(X[r["i"]].sum()) % 2 if r["path"] == "auto" else IR.path_index(r["path"]))
        assert r["total"] == r["controller"] + sum(r["layers"])
        assert (r["controller"] > 0) == (r["path"] == "auto")


@pytest.mark.parametrize(
    "faults",
    [
        Faults(garble_at={5, 17, 30, 44, 61, 90, 121}),
        Faults(silent_at={9, 40, 77}),
        Faults(reset_at={12, 55, 100}),
        Faults(reset_after={20, 80}),
        Faults(drop_in=0.002, drop_out=0.002, seed=3),
    ],
    ids=["garbled", "lost-replies", "reset-mid-command", "reset-between-commands", "dropped-bytes"],
)
def test_faults_do_not_change_the_results(tmp_path: Path, clean: list[dict], faults: Faults) -> None:
    dev = FakeDevice(IR, faults)
    log = tmp_path / "bench.jsonl"
    bench(dev, log).run()
    assert measured(log) == clean
    _, recs = ResultLog.read(log)
    events = [r["what"] for r in recs if r["kind"] == "event"]
    assert events, "the faults must have been noticed and recovered from"
    if faults.reset_at or faults.reset_after:
        assert dev.resets >= 1 and "reset" in events


def test_a_real_mismatch_is_rechecked_then_recorded(tmp_path: Path) -> None:
    i = 3
    dev = FakeDevice(IR, Faults(bug={(int(X[i].sum()), 1)}))
    log = tmp_path / "bench.jsonl"
    bench(dev, log, paths=["1"]).run()
    r = from_log(log)
    name = IR.path_names[1]
    assert r["paths"][name]["mismatches"] == 1 and r["paths"][name]["mismatch_images"] == [i]
    _, recs = ResultLog.read(log)
    bad = [x for x in recs if x["kind"] == "m" and not x["match"]]
    assert len(bad) == 1 and bad[0]["expected"][0] == bad[0]["logits"][0] - 1 and bad[0]["attempts"] == 2
    assert [x["what"] for x in recs if x["kind"] == "event"] == ["mismatch-recheck"]


def test_dead_device_keeps_partial_results_and_resume_completes(tmp_path: Path, clean: list[dict]) -> None:
    log = tmp_path / "bench.jsonl"
    with pytest.raises(BenchError, match="does not answer"):
        bench(FakeDevice(IR, Faults(dead_after=70)), log, retries=2).run()
    partial = measured(log)
    assert 0 < len(partial) < len(clean)
    assert partial == [c for c in clean if (c["i"], c["path"]) in {(p["i"], p["path"]) for p in partial}]
    # a crash in the middle of writing a line leaves a partial last line: resume drops it
    with open(log, "a") as f:
        f.write('{"kind": "m", "i": 99, "lo')
    fresh = FakeDevice(IR)
    bench(fresh, log, resume=True).run()
    assert measured(log) == clean  # no duplicate, nothing missing
    _, recs = ResultLog.read(log)
    assert sum(r["kind"] == "header" for r in [json.loads(ln) for ln in log.read_text().splitlines()]) == 1
    assert any(r["kind"] == "event" and r["what"] == "resumed" for r in recs)
    # the resumed run only measured what was missing
    assert fresh.commands < FakeDevice(IR).commands + 400


def test_resume_refuses_another_device_or_ir(tmp_path: Path) -> None:
    log = tmp_path / "bench.jsonl"
    bench(FakeDevice(IR), log, images=2).run()
    other = FakeDevice(IR)
    other.ir_hash = "ffffffffffffffff"
    with pytest.raises(BenchError, match="not from this IR"):
        bench(other, log, resume=True).run()
    with pytest.raises(BenchError, match="exists"):
        bench(FakeDevice(IR), log, resume=False).run()


def test_reset_into_different_firmware_stops_the_run(tmp_path: Path) -> None:
    log = tmp_path / "bench.jsonl"
    with pytest.raises(BenchError, match="different bp-info"):
        bench(FakeDevice(IR, Faults(reset_at={30}, changed_hash_after_reset=True)), log).run()
    _, recs = ResultLog.read(log)
    assert any(r["kind"] == "m" for r in recs) and recs[-1]["what"] == "device-changed"


def test_more_images_on_resume(tmp_path: Path, clean: list[dict]) -> None:
    log = tmp_path / "bench.jsonl"
    bench(FakeDevice(IR), log, images=4).run()
    assert len(measured(log)) == 4 * 3
    bench(FakeDevice(IR), log, images=12, resume=True).run()
    assert measured(log) == clean

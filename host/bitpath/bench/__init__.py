"""`bitpath bench`: accuracy, cost, energy and reports over the MLPerf Tiny serial protocol.

- :mod:`bitpath.bench.link`: self-healing client (resync, reset detection, checked replies);
- :mod:`bitpath.bench.run`: the benchmark loop and its append-only JSON-lines log (``--resume``);
- :mod:`bitpath.bench.results`: the versioned results document aggregated from the log;
- :mod:`bitpath.bench.report`: Markdown, self-contained HTML and PNG plots;
- :mod:`bitpath.bench.energy` and :mod:`bitpath.bench.boards`: estimated and PPK2-measured energy;
- :mod:`bitpath.bench.ptybridge` and :mod:`bitpath.bench.mlperf`: driving the firmware with the
  official mlcommons/tiny runner (docs/mlperf-runner.md).

See docs/bench.md.
"""

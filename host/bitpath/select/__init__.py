"""Bit-path selection: candidate paths offline, and the on-device controller that picks one per input.

- :mod:`bitpath.select.costs`: the per-layer cost table measured on the device (emulated board:
  instructions; a real board: cycles), cached with the kernel/firmware version it came from.
- :mod:`bitpath.select.sensitivity`: per-layer sensitivity to lowering (KL of the logits, imprinting).
- :mod:`bitpath.select.ilp`: K candidate paths by an integer program under cost, flash and RAM budgets.
- :mod:`bitpath.select.controller`: the tiny integer controller (training, quantization, the knob).
- :mod:`bitpath.select.baselines`: oracle, confidence cascade, Pareto front (shared with the bench).
- :mod:`bitpath.select.dynamic`: the controller's report against static paths, cascades and the oracle.
- :mod:`bitpath.select.pipeline`: ``bitpath select run``, costs to report in one command.
"""

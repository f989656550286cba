"""Offline bit-path selection (issue 5, first slice).

- :mod:`bitpath.select.costs`: the per-layer cost table measured on the device (emulated board:
  instructions; a real board: cycles), cached with the kernel/firmware version it came from.
- :mod:`bitpath.select.sensitivity`: per-layer sensitivity to lowering (KL of the logits, imprinting).
- :mod:`bitpath.select.ilp`: K candidate paths by an integer program under cost, flash and RAM budgets.

Fine-tuning with the chosen table and the on-device controller come later.
"""

"""Export to the bitpath IR (``exporter``, needs torch) and run it (``runner``, numpy only).

Import the submodules directly: ``from bitpath.export.runner import run`` does not import torch.
"""

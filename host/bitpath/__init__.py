"""bitpath: input-aware dynamic mixed-precision inference on microcontrollers."""

__version__ = "0.1.0"

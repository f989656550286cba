"""Multi-path quantization-aware training."""

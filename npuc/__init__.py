"""npuc: an NPU compiler and graph optimizer."""

__version__ = "0.1.0"

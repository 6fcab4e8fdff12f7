"""fluvial: the Fluvio streaming platform in Python, built to survive disk exhaustion."""

__version__ = "0.1.0"

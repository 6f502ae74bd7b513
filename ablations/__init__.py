"""Running, tuning, aggregating and reporting ablations of the configurable transformer."""

__version__ = "0.1.0"

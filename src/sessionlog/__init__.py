"""sessionlog: treatment-session logging for electrical stimulators."""

__version__ = "0.1.0"

"""The package version, read by pyproject.toml and written into file labels."""

__version__ = "0.1.0"

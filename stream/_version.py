"""The one place the version is written: pyproject.toml reads it, the code imports it."""
__version__ = "0.1.0"

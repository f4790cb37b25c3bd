"""protlab's version (read by pyproject.toml and recorded in every artifact)."""
__version__ = "0.2.0"

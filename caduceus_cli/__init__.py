"""caduceus-cli: exact, fast inference for the Caduceus DNA language models."""

__version__ = "0.1.0"

from caduceus_cli.model.load import load_model  # noqa: E402

__all__ = ["__version__", "load_model"]

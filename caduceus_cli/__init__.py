"""caduceus-cli: exact, fast inference for the Caduceus DNA language models."""

__version__ = "0.1.0"

__all__ = ["__version__", "load_model"]


def __getattr__(name: str):
    # lazy, so `caduceus --version` and `caduceus merge` do not pay for importing torch first
    if name == "load_model":
        from caduceus_cli.model.load import load_model

        return load_model
    raise AttributeError(f"module 'caduceus_cli' has no attribute {name!r}")

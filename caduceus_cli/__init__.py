"""caduceus-cli: exact, fast inference for the Caduceus DNA language models."""

import os
import sys

__version__ = "0.1.0"

# PyTorch's OpenMP threads otherwise spin for a while after every parallel region, on the cores
# where the compiled scan's threads run next (and where any other process runs): measured 1.3-5x
# slower at 2 threads on a 2-core machine. Takes effect only if torch is not imported yet (the
# command line always; a Python session that imports caduceus_cli first); an explicit setting wins.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["__version__", "load_model"]


def __getattr__(name: str):
    # lazy, so `caduceus --version` and `caduceus merge` do not pay for importing torch first
    if name == "load_model":
        from caduceus_cli.model.load import load_model

        return load_model
    raise AttributeError(f"module 'caduceus_cli' has no attribute {name!r}")

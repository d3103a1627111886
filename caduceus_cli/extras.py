"""Optional packages (pyproject's extras): a feature that needs one checks for it before any work, so a
run never loads a model, or computes for hours, and then stops at the import."""

from __future__ import annotations

import importlib
from types import ModuleType

from caduceus_cli.errors import UsageError


def require(package: str, feature: str, otherwise: str = "") -> ModuleType:
    """The module `package` (an importable name that is also its PyPI name), or a usage error naming the
    `feature` that needs it, how to install it, and `otherwise`: what works without it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        instead = f"; {otherwise}" if otherwise else ""
        raise UsageError(f"{feature} needs the {package} package: pip install {package}{instead}") from None

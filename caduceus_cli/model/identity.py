"""Which model made an output: the checkpoint's provenance, its variant and dtype, and how its two strands
are combined. Every output records it: HDF5 root attributes and background header lines (`fields`), a
VCF's `##caduceus_model` line (`vcf_meta`), and the INFO descriptions (`text`, `rc`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from caduceus_cli.model.caduceus import CaduceusForMaskedLM


@dataclass(frozen=True)
class ModelIdentity:
    """`source` (folder or hub id as given), resolved `revision` ("none" for a folder), `sha256` of the
    weights file, `variant` ("ph" or "ps") and the `dtype` it runs in ("float32", ...)."""

    source: str
    revision: str
    sha256: str
    variant: str
    dtype: str

    @classmethod
    def of(cls, model: CaduceusForMaskedLM) -> ModelIdentity:
        """The identity of a loaded model (`load_model` records its provenance; a model built in memory
        has none: empty strings)."""
        provenance = model.provenance
        return cls(
            source=provenance["source"] or "",
            revision=provenance["revision"] or "",
            sha256=provenance["sha256"] or "",
            variant=model.variant,
            dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
        )

    @property
    def rc(self) -> str:
        """How the model's two strands are combined (what `rc="auto"` does for its variant)."""
        if self.variant == "ps":
            return "RC-conjoined in one pass (PS model, reverse-complement equivariant)"
        return "RC-conjoined (PH model: mean of the forward pass and the reverse-complement pass mapped back)"

    def fields(self) -> dict[str, str]:
        """The checkpoint as named fields, in the order outputs store them."""
        return {
            "model_source": self.source,
            "model_revision": self.revision,
            "model_sha256": self.sha256,
            "model_variant": self.variant,
        }

    def vcf_meta(self, window: int, variant_index: int | None) -> str:
        """The value of a scored VCF's `##caduceus_model` line, with the variant window it was run at."""
        at = "" if variant_index is None else f";variant_index={variant_index}"
        return (
            f"source={self.source};revision={self.revision};sha256={self.sha256};variant={self.variant};"
            f"window={window}{at}"
        )

    def text(self) -> str:
        """The checkpoint in words, as the INFO descriptions name it."""
        return f"{self.source} (revision {self.revision}, sha256 {self.sha256[:12]})"

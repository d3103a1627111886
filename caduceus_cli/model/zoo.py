"""The published Caduceus checkpoints this tool knows: what `caduceus models` lists, and the training
length of a checkpoint whose own files do not record it sensibly.

Facts are from each hub repository's config.json and model card and the two projects' READMEs
(github.com/kuleshov-group/caduceus, github.com/kuleshov-group/PlantCaduceus); docs/models.md
says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class PublishedModel:
    hub_id: str
    variant: str  # "ph" (rcps false) or "ps" (rcps true)
    d_model: int
    n_layer: int
    parameters: int
    training_length: int  # bases per training window: the default --window
    data: str
    licence: str

    @property
    def name(self) -> str:
        return self.hub_id.split("/", 1)[1]


_HUMAN = "human reference genome hg38 (Basenji/Enformer train split)"
_PLANTS = "16 angiosperm genomes (kuleshov-group/Angiosperm_16_genomes)"
_APACHE = "apache-2.0"
_NOT_STATED = "not stated"  # the 1k repositories' model cards carry no licence
_HUB = "kuleshov-group/"
_C = _HUB + "caduceus-"

# Parameter counts are computed from each published config (tied tensors counted once).
PUBLISHED = (
    PublishedModel(_C + "ph_seqlen-131k_d_model-256_n_layer-16", "ph", 256, 16, 7_725_312, 131_072, _HUMAN, _APACHE),
    PublishedModel(_C + "ps_seqlen-131k_d_model-256_n_layer-16", "ps", 256, 16, 7_725_312, 131_072, _HUMAN, _APACHE),
    PublishedModel(_C + "ph_seqlen-1k_d_model-256_n_layer-4_lr-8e-3", "ph", 256, 4, 1_934_592, 1_024, _HUMAN, _NOT_STATED),
    PublishedModel(_C + "ps_seqlen-1k_d_model-256_n_layer-4_lr-8e-3", "ps", 256, 4, 1_934_592, 1_024, _HUMAN, _NOT_STATED),
    PublishedModel(_C + "ph_seqlen-1k_d_model-118_n_layer-4_lr-8e-3", "ph", 118, 4, 470_702, 1_024, _HUMAN, _NOT_STATED),
    PublishedModel(_C + "ps_seqlen-1k_d_model-118_n_layer-4_lr-8e-3", "ps", 118, 4, 470_702, 1_024, _HUMAN, _NOT_STATED),
    PublishedModel(_HUB + "PlantCaduceus_l20", "ps", 384, 20, 20_870_016, 512, _PLANTS, _APACHE),
    PublishedModel(_HUB + "PlantCaduceus_l24", "ps", 512, 24, 43_614_720, 512, _PLANTS, _APACHE),
    PublishedModel(_HUB + "PlantCaduceus_l28", "ps", 768, 28, 112_107_264, 512, _PLANTS, _APACHE),
    PublishedModel(_HUB + "PlantCaduceus_l32", "ps", 1024, 32, 225_354_752, 512, _PLANTS, _APACHE),
)  # fmt: skip

# Where the Hugging Face cache keeps a repository: <cache>/models--owner--name/snapshots/<commit>/
_CACHE_FOLDER = re.compile(r"^models--([\w.-]+?)--([\w.-]+)$")


def published(source: str) -> PublishedModel | None:
    """The published checkpoint `source` names: its hub id, a folder inside the Hugging Face cache that
    holds it, or a local folder named after it (`/data/models/PlantCaduceus_l32`)."""
    by_id = {model.hub_id.lower(): model for model in PUBLISHED}
    by_name = {model.name.lower(): model for model in PUBLISHED}
    if source.lower() in by_id:
        return by_id[source.lower()]
    for part in reversed(PurePath(source).parts):
        cached = _CACHE_FOLDER.match(part)
        if cached and f"{cached[1]}/{cached[2]}".lower() in by_id:
            return by_id[f"{cached[1]}/{cached[2]}".lower()]
    return by_name.get(PurePath(source.rstrip("/")).name.lower())

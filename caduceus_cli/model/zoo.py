"""The published Caduceus checkpoints this tool knows: what `caduceus models` lists, and the training
length of a checkpoint whose own files do not record it sensibly.

Facts are from each hub repository's config.json and model card and the projects' READMEs
(github.com/kuleshov-group/caduceus, github.com/kuleshov-group/PlantCaduceus); docs/models.md
says which, and which were not published where we could read them (None here, "?" in the listing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class PublishedModel:
    hub_id: str
    variant: str | None  # "ph" (rcps false) or "ps" (rcps true)
    mixer: str  # "Mamba1" or "Mamba2", as ssm_cfg names them
    d_model: int | None
    n_layer: int | None
    parameters: int | None
    training_length: int | None  # bases per training window: the default --window
    data: str
    licence: str

    @property
    def name(self) -> str:
        return self.hub_id.split("/", 1)[1]


_HUMAN = "human reference genome hg38 (Basenji/Enformer train split)"
_PLANTS = "16 angiosperm genomes (kuleshov-group/Angiosperm_16_genomes)"
_PLANTS_65 = "65 angiosperm genomes (plantcad/Angiosperm_65_genomes_8192bp)"
_VERTEBRATES = "vertebrate genomes (not published where we could read it)"
_APACHE = "apache-2.0"
_NONE = "not stated"  # the 1k repositories' model cards carry no licence
_NOT_READ = "see the model card"  # a model card we could not read
_HUB = "kuleshov-group/"
_C = _HUB + "caduceus-"
_P2 = _HUB + "PlantCAD2-"
M1, M2 = "Mamba1", "Mamba2"

# Parameter counts are computed from each published config (tied tensors counted once); PlantCAD2's from
# its sizes with its ssm_cfg (d_state 64, expand 2) and Mamba2's head size 64 and one group.
PUBLISHED = (
    PublishedModel(_C + "ph_seqlen-131k_d_model-256_n_layer-16", "ph", M1, 256, 16, 7_725_312, 131_072, _HUMAN, _APACHE),
    PublishedModel(_C + "ps_seqlen-131k_d_model-256_n_layer-16", "ps", M1, 256, 16, 7_725_312, 131_072, _HUMAN, _APACHE),
    PublishedModel(_C + "ph_seqlen-1k_d_model-256_n_layer-4_lr-8e-3", "ph", M1, 256, 4, 1_934_592, 1_024, _HUMAN, _NONE),
    PublishedModel(_C + "ps_seqlen-1k_d_model-256_n_layer-4_lr-8e-3", "ps", M1, 256, 4, 1_934_592, 1_024, _HUMAN, _NONE),
    PublishedModel(_C + "ph_seqlen-1k_d_model-118_n_layer-4_lr-8e-3", "ph", M1, 118, 4, 470_702, 1_024, _HUMAN, _NONE),
    PublishedModel(_C + "ps_seqlen-1k_d_model-118_n_layer-4_lr-8e-3", "ps", M1, 118, 4, 470_702, 1_024, _HUMAN, _NONE),
    PublishedModel(_HUB + "PlantCaduceus_l20", "ps", M1, 384, 20, 20_870_016, 512, _PLANTS, _APACHE),
    PublishedModel(_HUB + "PlantCaduceus_l24", "ps", M1, 512, 24, 43_614_720, 512, _PLANTS, _APACHE),
    PublishedModel(_HUB + "PlantCaduceus_l28", "ps", M1, 768, 28, 112_107_264, 512, _PLANTS, _APACHE),
    PublishedModel(_HUB + "PlantCaduceus_l32", "ps", M1, 1024, 32, 225_354_752, 512, _PLANTS, _APACHE),
    PublishedModel(_P2 + "Small-l24-d0768", "ps", M2, 768, 24, 88_238_208, 8_192, _PLANTS_65, _NOT_READ),
    PublishedModel(_P2 + "Medium-l48-d1024", "ps", M2, 1024, 48, 311_162_880, 8_192, _PLANTS_65, _NOT_READ),
    PublishedModel(_P2 + "Large-l48-d1536", "ps", M2, 1536, 48, 694_385_664, 8_192, _PLANTS_65, _NOT_READ),
    PublishedModel("emarro/pcad2_vert_small", None, M2, None, None, None, None, _VERTEBRATES, _NOT_READ),
    PublishedModel("emarro/pcad2_vert_large", None, M2, None, None, None, None, _VERTEBRATES, _NOT_READ),
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


def published_with_sizes(variant: str, mixer: str, d_model: int, n_layer: int) -> PublishedModel | None:
    """The one published checkpoint of these sizes with a known training length, if exactly one."""
    matches = {
        model.training_length: model
        for model in PUBLISHED
        if (model.variant, model.mixer, model.d_model, model.n_layer) == (variant, mixer, d_model, n_layer)
        and model.training_length is not None
    }
    return next(iter(matches.values())) if len(matches) == 1 else None

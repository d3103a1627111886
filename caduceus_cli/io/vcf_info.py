"""The INFO fields `score-variants` writes: their keys, and descriptions that say how each number was
computed (with which model, window and strand handling), so a scored VCF documents itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from caduceus_cli.alleles import CLASSES, FLAGS
from caduceus_cli.calibration import CONTEXT_RULE, Background
from caduceus_cli.scoring.settings import PROBS, SCORES, Settings, percentile_name
from caduceus_cli.terminal import number_text

if TYPE_CHECKING:
    from caduceus_cli.model.identity import ModelIdentity

INFO_KEYS = {
    "llr": "CADUCEUS_LLR",
    "llr-unmasked": "CADUCEUS_LLR_UNMASKED",
    "emb-cos": "CADUCEUS_EMB_COS",
    "emb-l2": "CADUCEUS_EMB_L2",
    "p-ref": "CADUCEUS_P_REF",
    "p-alt": "CADUCEUS_P_ALT",
}
INFO_KEYS |= {percentile_name(score): f"{INFO_KEYS[score]}_PCT" for score in SCORES}
CLASS_KEY = "CADUCEUS_CLASS"
FLAG_KEY = "CADUCEUS_FLAG"


@dataclass(frozen=True)
class InfoField:
    key: str
    type: str  # "Float" or "String"
    description: str


def info_fields(settings: Settings, model: ModelIdentity) -> list[InfoField]:
    """Declarations of the scores, the class and the flag, whose descriptions say how each number was computed."""
    w, about, rc = settings.window, model.text(), model.rc
    # the flank is clipped to the window: say what was averaged, not what was asked for
    span = "the whole window" if settings.flank >= w // 2 else f"{settings.flank} bp each side of it"
    where = f"in the centre (index {w // 2})" if settings.centre == w // 2 else f"at index {settings.centre}"
    masked = f"the changed bases replaced by [MASK] {where} of a {w} bp window"
    per_score = {
        "llr": "Caduceus log-likelihood ratio, nats; negative: the model finds ALT less likely. "
        f"Substitutions: sum of logit(ALT) - logit(REF) over the changed bases, with {masked} "
        "(a SNV: log P(ALT)/P(REF)); insertions, deletions, complex: log-probabilities of the ALT minus the "
        f"REF haplotype in {w} bp windows aligned base for base, each allele masked and scored against the "
        f"model's expectation (log P + entropy), plus the {settings.llr_flank} flank bases each side both share",
        "llr-unmasked": "Caduceus unmasked log-likelihood ratio logit(ALT) - logit(REF), summed over the changed "
        f"bases of a substitution, read from one pass over the reference in a grid tile of {w} bp whose "
        "central half holds the base; missing for insertions, deletions and complex changes",
        "emb-cos": "Caduceus cosine distance (1 - cosine) between mean embeddings of the REF and ALT "
        f"{w} bp windows around the variant, over the flank bases both share, averaged over {span}",
        "emb-l2": "Caduceus L2 distance between mean embeddings of the REF and ALT "
        f"{w} bp windows around the variant, over the flank bases both share, averaged over {span}",
        "p-ref": f"Caduceus P(REF) of a substitution, softmax over A C G T logits with {masked} "
        "(product over changed bases)",
        "p-alt": f"Caduceus P(ALT) of a substitution, softmax over A C G T logits with {masked} "
        "(product over changed bases)",
    }
    names = list(settings.scores) + (list(PROBS) if settings.probs else [])
    fields = [InfoField(INFO_KEYS[n], "Float", f"{per_score[n]}; model {about}; {rc}") for n in names]
    classes = ", ".join(CLASSES)
    fields.append(
        InfoField(
            CLASS_KEY,
            "String",
            f"Class of the change each ALT makes once shared bases are trimmed ({classes}); . when not scored",
        )
    )
    reasons = ", ".join(f"{flag} ({meaning})" for flag, meaning in FLAGS.items())
    fields.append(InfoField(FLAG_KEY, "String", f"Why the Caduceus scores of an ALT are missing: {reasons}"))
    return fields


def percentile_fields(background: Background, scores: Sequence[str]) -> list[InfoField]:
    """Declarations of the percentiles among a background: the file, the context rule, how many variants."""
    meta = background.meta
    made = (
        f"{background.path} ({background.variants:,} variants at {number_text(meta.get('sites_used'))} random sites of "
        f"{meta.get('genome')}, seed {meta.get('seed')})"
    )
    if meta.get("indels") == "yes":
        missing = f"MNVs, complex changes and indels longer than {meta.get('max_indel')} bp"
    else:
        missing = "MNVs, complex changes and every indel (a background of SNVs only)"
    fields = []
    for score in scores:
        reading = (
            "low: lower than most random changes there, a change the model expects less than most"
            if score.startswith("llr")
            else "high: the embedding changes more than for most random changes there"
        )
        fields.append(
            InfoField(
                INFO_KEYS[percentile_name(score)],
                "Float",
                f"Percentile (0-100, mid-rank) of {INFO_KEYS[score]} among the background variants of the "
                f"same context in {made}; {CONTEXT_RULE}; {reading}; a rank among random changes, not a "
                f"probability of pathogenicity; . for {missing}",
            )
        )
    return fields

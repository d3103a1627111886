"""What a variant score is, and how one VCF record becomes its scored record.

A record's ALTs become outcomes (`outcomes.scored_alleles`: the places each change is scored at, or
the flag saying why not); a `plan.ScorePlan` lists the model windows those changes need (typed
window jobs), its `plan.PlanRunner` runs them through the engine, and the plan reads each score
back from the outputs with the math of `scores` (per-base tracks: `tracks`).

- `settings`: what is computed (score names, --probs, window, flanks) and the defaults.
- `geometry`: where a change sits in its window, which changes fit, which rows two windows share.
- `outcomes`: what each ALT of a record is scored as.
- `plan`: window jobs, the plan that lists them and reads scores back, and its runner.
- `scores`: scores as functions of logits and embeddings (pure numpy).
- `tracks`: per-base scores of one pass over the reference (`caduceus track`).

The INFO fields that declare the scores in a VCF are written by `io/vcf_info.py`; the ISM table lives
with `pipelines/ism.py`.
"""

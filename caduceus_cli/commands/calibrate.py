"""`caduceus calibrate`: the background that makes scores comparable (`score-variants --background`).

Options and their checks here; sampling, scoring and the header that records how the background was
made: `pipelines.calibrate` (`CalibrateJob`); the file: `io.backgrounds`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli.commands.inputs import chrom_map_names, open_reference
from caduceus_cli.commands.options import (
    INPUT,
    OUTPUT,
    ChromMapOpt,
    EmbFlankOpt,
    FastaArg,
    ForceOpt,
    RegionOpt,
    ShardOpt,
    VariantIndexOpt,
    VariantScoreOpt,
    VariantWindowOpt,
)
from caduceus_cli.commands.resolve import (
    check_emb_flank,
    check_variant_window,
    command_line,
    parse_shard,
    scores_asked,
    variant_window,
)
from caduceus_cli.commands.runtime import Runtime, runtime_options
from caduceus_cli.errors import UsageError
from caduceus_cli.io.outputs import check_writable_output, claimed
from caduceus_cli.io.regions import input_regions
from caduceus_cli.pipelines.calibrate import CalibrateJob
from caduceus_cli.scoring.settings import DEFAULT_FLANK, DEFAULT_SCORES, Settings

log = logging.getLogger("caduceus")

SAMPLE = "Sample"
DEFAULT_SITES = 100_000  # ~3,000 SNVs per context: percentiles good to about a point (docs/commands/calibrate.md)
DEFAULT_SEED = 1
DEFAULT_MAX_INDEL = 10


@runtime_options
def calibrate(
    fasta: FastaArg,
    *,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Background to write (gzipped table, .tsv.gz).",
            rich_help_panel=OUTPUT,
        ),
    ],
    sites: Annotated[
        int,
        typer.Option(
            "--sites",
            "-n",
            metavar="N",
            help="Random sites to score: 3 SNVs, a deletion and an insertion each, about 6 model windows per "
            "site (1 with --no-indels). The default is a GPU job (about 20 GPU-minutes at the published size); "
            "on a 2-core CPU the shipped model takes hours (docs/commands/calibrate.md); shard it with --shard.",
            rich_help_panel=SAMPLE,
        ),
    ] = DEFAULT_SITES,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            metavar="S",
            help="Seed of the sample: the same seed, genome and regions give the same sites.",
            rich_help_panel=SAMPLE,
        ),
    ] = DEFAULT_SEED,
    regions_bed: Annotated[
        Path | None,
        typer.Option(
            "--regions", "-R", metavar="BED", help="BED file of regions to sample from (their union).",
            rich_help_panel=INPUT,
        ),
    ] = None,
    region: RegionOpt = None,
    chrom_map: ChromMapOpt = None,
    max_indel: Annotated[
        int,
        typer.Option(
            "--max-indel",
            metavar="L",
            help="Longest insertion and deletion drawn (lengths uniform from 1).",
            rich_help_panel=SAMPLE,
        ),
    ] = DEFAULT_MAX_INDEL,
    no_indels: Annotated[
        bool, typer.Option("--no-indels", help="SNVs only: a sixth of the cost.", rich_help_panel=SAMPLE)
    ] = False,
    score: VariantScoreOpt = None,
    window: VariantWindowOpt = None,
    variant_index: VariantIndexOpt = None,
    emb_flank: EmbFlankOpt = DEFAULT_FLANK,
    shard: ShardOpt = None,
    force: ForceOpt = False,
    runtime: Runtime,
) -> None:
    """Score random changes at random sites of a genome: the background of score-variants --background."""
    check_variant_window(window, variant_index)
    shard_part = parse_shard(shard)
    _check_options(output, sites, seed, max_indel)
    check_emb_flank(emb_flank)
    check_writable_output(output, force)
    window = variant_window(runtime.trained_window(), window, variant_index)
    settings = Settings(
        scores=scores_asked(score, DEFAULT_SCORES), probs=False, window=window, flank=emb_flank,
        on_ref_mismatch="flag", variant_index=variant_index,
    )  # fmt: skip
    names = chrom_map_names(chrom_map)
    # claimed before the model loads: a second run on this output refuses at once
    with (
        claimed(output),
        open_reference(fasta, names) as reader_fasta,
        open_reference(fasta, names) as window_fasta,
    ):
        regions = input_regions(reader_fasta, regions_bed, region or [])
        job = CalibrateJob(
            output=output, genome=fasta, regions=regions, regions_given=bool(regions_bed or region),
            settings=settings, sites=sites, seed=seed, indels=not no_indels, max_indel=max_indel, shard=shard_part,
            command_line=command_line(),
        )  # fmt: skip
        model = runtime.load_model()
        job.run(runtime.engine(model), reader_fasta, window_fasta, runtime.quiet)


def _check_options(output: Path, sites: int, seed: int, max_indel: int) -> None:
    if str(output) == "-" or not output.name.lower().endswith(".gz"):
        raise UsageError(f"-o {output}: a background is a gzipped file; name it .tsv.gz")
    if sites < 1:
        raise UsageError(f"--sites {sites}: must be at least 1")
    if seed < 0:
        raise UsageError(f"--seed {seed}: must be 0 or more")
    if max_indel < 1:
        raise UsageError(f"--max-indel {max_indel}: must be at least 1 (--no-indels leaves indels out)")

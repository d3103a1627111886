"""`caduceus calibrate`: the background that makes scores comparable (`score-variants --background`).

Options, the header that records how the background was made, and the checks before any work
here; sampling and scoring: `pipelines.calibrate`; the file: `io.backgrounds`.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli import __version__
from caduceus_cli.calibration import CONTEXT_RULE, run_identity
from caduceus_cli.commands.common import (
    BatchSizeOpt,
    ChromMapOpt,
    DeviceOpt,
    DtypeOpt,
    FastaArg,
    ForceOpt,
    LogFileOpt,
    ModelOpt,
    QuietOpt,
    RegionOpt,
    RevisionOpt,
    ShardOpt,
    ThreadsOpt,
    VariantIndexOpt,
    check_variant_window,
    choices,
    command_line,
    open_model,
    open_reference,
    parse_shard,
    set_threads,
    variant_window,
)
from caduceus_cli.engine import Engine
from caduceus_cli.errors import UsageError
from caduceus_cli.io.backgrounds import COMMAND_KEY, SHARD_KEY, BackgroundWriter
from caduceus_cli.io.outputs import check_writable_output, claimed
from caduceus_cli.io.regions import input_regions
from caduceus_cli.io.tables import table_output
from caduceus_cli.pipelines.calibrate import Sample, SiteScorer, sample_sites, shard_sites, write_background
from caduceus_cli.scoring import DEFAULT_FLANK, DEFAULT_SCORES, MAX_DEFAULT_WINDOW, SCORES, Settings
from caduceus_cli.terminal import setup_logging

log = logging.getLogger("caduceus")

Score = choices("Score", SCORES)
DEFAULT_SITES = 100_000  # ~3,000 SNVs per context: percentiles good to about a point (README)
DEFAULT_SEED = 1
DEFAULT_MAX_INDEL = 10


def calibrate(
    fasta: FastaArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Background to write (gzipped table, .tsv.gz).")],
    sites: Annotated[
        int,
        typer.Option(
            "--sites",
            "-n",
            help="Random sites to score: 3 SNVs, a deletion and an insertion each, about 6 model windows per "
            "site (1 with --no-indels). The default is a GPU job (about 20 GPU-minutes at the published size); "
            "on a 2-core CPU the shipped model takes hours (README); shard it with --shard.",
        ),
    ] = DEFAULT_SITES,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the sample: the same seed, genome and regions give the same sites.")
    ] = DEFAULT_SEED,
    regions_bed: Annotated[
        Path | None, typer.Option("--regions", "-R", help="BED file of regions to sample from (their union).")
    ] = None,
    region: RegionOpt = None,
    chrom_map: ChromMapOpt = None,
    max_indel: Annotated[
        int, typer.Option("--max-indel", help="Longest insertion and deletion drawn (lengths uniform from 1).")
    ] = DEFAULT_MAX_INDEL,
    no_indels: Annotated[bool, typer.Option("--no-indels", help="SNVs only: a sixth of the cost.")] = False,
    score: Annotated[
        list[Score] | None,
        typer.Option("--score", "-s", help="Score to compute, as score-variants; repeat for several. Default: llr."),
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(
            "--window",
            "-w",
            help=f"As score-variants (a background serves runs of the same window). Default: the model's "
            f"training length, at most {MAX_DEFAULT_WINDOW}.",
        ),
    ] = None,
    variant_index: VariantIndexOpt = None,
    emb_flank: Annotated[
        int, typer.Option("--emb-flank", help="Bases each side of the variant averaged for emb-cos/emb-l2.")
    ] = DEFAULT_FLANK,
    shard: ShardOpt = None,
    batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
    log_file: LogFileOpt = None,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    force: ForceOpt = False,
) -> None:
    """Score random changes at random sites of a genome: the background of score-variants --background."""
    setup_logging(quiet, log_file)
    set_threads(threads)
    check_variant_window(window, variant_index)
    shard_part = parse_shard(shard)
    _check_options(output, sites, seed, max_indel, emb_flank)
    check_writable_output(output, force)
    scores = tuple(dict.fromkeys(s.value for s in score)) if score else DEFAULT_SCORES
    with (
        claimed(output),
        open_reference(fasta, chrom_map) as reader_fasta,
        open_reference(fasta, chrom_map) as window_fasta,
    ):
        regions = input_regions(reader_fasta, regions_bed, region or [])
        sample = sample_sites(reader_fasta, regions, sites, seed, max_indel)
        part = shard_sites(len(sample.sites), shard_part)
        log.info(
            "%d sites of %d A/C/G/T bases (seed %d)%s", len(sample.sites), sample.acgt_bases, seed,
            f"; shard {shard}: sites {part.start + 1}-{part.stop}" if shard_part else "",
        )  # fmt: skip
        model_obj = open_model(model, revision, device, dtype)
        window = variant_window(model_obj, window, variant_index)
        if not no_indels and max_indel > window // 2:
            raise UsageError(f"--max-indel {max_indel}: an indel is scored when it spans at most W/2 = {window // 2}")
        settings = Settings(scores, False, window, emb_flank, "flag", variant_index)
        meta = {
            "caduceus_version": __version__,
            COMMAND_KEY: command_line(),
            **run_identity(model_obj, settings),
            "scores": ",".join(scores),
            **_sample_meta(fasta, regions_bed, region, sample, sites, seed, no_indels, max_indel),
            **({SHARD_KEY: shard} if shard_part else {}),
        }
        scorer = SiteScorer(Engine(model_obj, batch_size=batch_size), reader_fasta, window_fasta, settings, sample,
                            not no_indels)  # fmt: skip
        with table_output(output) as stream:
            write_background(scorer, part, BackgroundWriter(stream, meta, scores), quiet)
    log.info("wrote %s", output)


def _check_options(output: Path, sites: int, seed: int, max_indel: int, emb_flank: int) -> None:
    if str(output) == "-" or not output.name.lower().endswith(".gz"):
        raise UsageError(f"-o {output}: a background is a gzipped file; name it .tsv.gz")
    if sites < 1:
        raise UsageError(f"--sites {sites}: must be at least 1")
    if seed < 0:
        raise UsageError(f"--seed {seed}: must be 0 or more")
    if max_indel < 1:
        raise UsageError(f"--max-indel {max_indel}: must be at least 1 (--no-indels leaves indels out)")
    if emb_flank < 0:
        raise UsageError(f"--emb-flank {emb_flank}: must be 0 or more")


def _sample_meta(
    fasta: Path,
    regions_bed: Path | None,
    region: list[str] | None,
    sample: Sample,
    requested: int,
    seed: int,
    no_indels: bool,
    max_indel: int,
) -> dict[str, str]:
    """What was sampled: genome, regions, seed, sizes, indels and the context rule."""
    bases = sum(end - start for _, start, end in sample.intervals)
    chosen = "the union of -R/-r" if regions_bed or region else "all contigs"
    return {
        "genome": fasta.name,
        "genome_sha256": _file_sha256(fasta),
        "regions": f"{chosen}: {len(sample.intervals)} intervals, {bases} bp",
        "regions_sha256": sample.regions_sha256(),
        "acgt_bases": str(sample.acgt_bases),
        "seed": str(seed),
        "sites_requested": str(requested),
        "sites_used": str(len(sample.sites)),
        "indels": "no" if no_indels else "yes",
        "max_indel": str(max_indel),
        "contexts": CONTEXT_RULE,
    }


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()

"""`embed`: regions of a FASTA into an `EmbeddingFile` (HDF5), through the tiled path (`pipelines.tiles`).

`EmbedJob` is one run: its settings, resolved, and the output it owns (written as OUT.partial,
resumable, renamed when complete; the settings and provenance stored in it; a shard's identity
stored as data). The command line builds one from its options; Python code builds the same and
gets the same file:

    from pathlib import Path

    from caduceus_cli import load_model
    from caduceus_cli.engine import Engine
    from caduceus_cli.io.fasta import Fasta
    from caduceus_cli.io.hdf5.layout import Layout
    from caduceus_cli.io.regions import all_contigs
    from caduceus_cli.pipelines.embed import EmbedJob

    model = load_model("weights/caduceus-ph-tair10")
    fasta = Path("genome.fa")
    with Fasta(fasta) as reference:
        job = EmbedJob(output=Path("out.h5"), fasta=fasta, regions=all_contigs(reference),
                       layout=Layout(d=model.config.d_model), window=1024, overlap=128)
        stats = job.run(Engine(model), reference)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from caduceus_cli import __version__
from caduceus_cli.engine import Engine
from caduceus_cli.errors import InputError, OutputError
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.hdf5.layout import COORDINATES, Layout, ShardInfo, regions_digest
from caduceus_cli.io.hdf5.resume import partial_progress
from caduceus_cli.io.hdf5.writer import EmbeddingFile, RegionWriter
from caduceus_cli.io.outputs import claimed, committed, failure_reason, partial_path
from caduceus_cli.io.regions import Region
from caduceus_cli.model.identity import ModelIdentity
from caduceus_cli.pipelines.tiles import TileKey, map_tiles
from caduceus_cli.terminal import counted
from caduceus_cli.windows import region_shard

log = logging.getLogger("caduceus")


@dataclass(frozen=True)
class EmbedStats:
    """What one `embed_regions` call did: regions resumed (already done), regions and bases embedded, seconds."""

    resumed: int
    regions: int
    bases: int
    seconds: float

    @property
    def bases_per_second(self) -> float:
        return self.bases / max(self.seconds, 1e-9)


@dataclass(frozen=True, kw_only=True)
class EmbedJob:
    """One `embed` run: every region of `regions` (or the `shard` (index, count) of them, 0-based) of the
    FASTA file `fasta` into `output`, laid out as `layout`, tiled by `window`/`overlap`. With `resume`,
    an interrupted run's partial file is continued. `max_bytes` refuses an output estimated larger;
    `command_line` is recorded as provenance (the command line records the command as typed).
    `run` reads the sequence from that FASTA, opened (`Fasta`); the path is recorded as the
    `reference` setting."""

    output: Path
    fasta: Path
    regions: Sequence[Region]
    layout: Layout
    window: int
    overlap: int
    rc: str = "auto"
    shard: tuple[int, int] | None = None
    resume: bool = False
    max_bytes: int | None = None
    command_line: str = field(default="", compare=False)

    def run(self, engine: Engine, reference: Fasta, quiet: bool = True) -> EmbedStats:
        """Write the output (claimed, under OUT.partial, renamed when complete) and return what was done."""
        partial = partial_path(self.output)
        with claimed(self.output):
            if self.resume and not partial.exists():
                raise InputError(f"{partial}: no partial file to resume; run without --resume")
            shard = self._shard_info()
            selected = self.regions if shard is None else [self.regions[i] for i in shard.rows]
            self._check_size(selected)
            settings = self.settings(engine.model)
            # A resume is checked before committed() takes charge of the partial file, so a refused
            # resume (other model or settings) leaves the interrupted run's work in place.
            out = EmbeddingFile.resume(partial, selected, self.layout, settings, shard) if self.resume else None
            if out is None and partial.exists():
                log.warning(
                    "%s: starting over, discarding an interrupted run's partial file (%s); "
                    "--resume continues from it instead",
                    partial,
                    _progress_text(partial),
                )
            with committed(self.output, resumable=True):
                if out is None:
                    provenance = {"tool_version": __version__, "command_line": self.command_line}
                    out = EmbeddingFile.create(partial, selected, self.layout, settings, provenance, shard)
                stats = self._fill(out, engine, reference, selected, quiet)
        log.info("wrote %s", self.output)
        return stats

    def settings(self, model) -> dict:
        """What determines the output values: stored as root attributes, checked on resume and merge."""
        identity = ModelIdentity.of(model)
        return {
            **identity.fields(),
            "rc": self.rc,
            "window": self.window,
            "overlap": self.overlap,
            "dtype": identity.dtype,
            "reference": str(self.fasta),
            "regions_sha256": regions_digest(self.regions),
            "coordinates": COORDINATES,
        }

    def _fill(
        self, out: EmbeddingFile, engine: Engine, reference: Fasta, selected: Sequence[Region], quiet: bool
    ) -> EmbedStats:
        """Embed the regions the file does not have yet; on an interrupt or a write error, keep what is done."""
        partial = partial_path(self.output)
        try:
            stats = embed_regions(
                engine, reference, selected, out, window=self.window, overlap=self.overlap, rc=self.rc, quiet=quiet
            )
            out.finish()
            return stats
        except KeyboardInterrupt:
            out.close()  # commits the finished regions, so the count below is what --resume skips
            raise KeyboardInterrupt(
                f"{_progress_text(partial)} saved in {partial}; rerun the same command with --resume to continue"
            ) from None
        except OSError as error:
            with contextlib.suppress(OSError, RuntimeError):  # the write's error is the one to report
                out.close()  # commits the finished regions, unless the failed write broke the file
            raise OutputError(
                f"{self.output}: cannot write: {failure_reason(error, partial)}; {_saved(partial)}"
            ) from None
        finally:
            out.close()

    def _shard_info(self) -> ShardInfo | None:
        if self.shard is None:
            return None
        index, count = self.shard
        rows = region_shard(self.regions, index, count)
        return ShardInfo(index, count, len(self.regions), np.array(rows, dtype=np.int64))

    def _check_size(self, regions: Sequence[Region]) -> None:
        lengths = [r.end - r.start for r in regions]
        estimate = self.layout.estimate_bytes(lengths)
        log.info(
            "%s, %s, estimated output %s uncompressed",
            counted(len(regions), "region"), counted(sum(lengths), "base"), human_size(estimate),
        )  # fmt: skip
        if self.max_bytes is not None and estimate > self.max_bytes:
            raise InputError(
                f"estimated output {human_size(estimate)} exceeds --max-output-size {human_size(self.max_bytes)}; "
                "store less with --bin K and/or --pool mean (with --no-per-base), or raise --max-output-size"
            )


def human_size(size: float) -> str:
    """Bytes in the units --max-output-size takes: 1536 -> '1.5K'."""
    for unit in "BKMG":
        if size < 1024:
            return f"{size:.1f}{unit}" if unit != "B" else f"{size:.0f}B"
        size /= 1024
    return f"{size:.1f}T"


def _saved(partial: Path) -> str:
    """What a run stopped by a write error leaves, and what to do next."""
    if partial_progress(partial) is None:
        return f"{partial} cannot be resumed; make room and run again without --resume"
    return f"{_progress_text(partial)} saved in {partial}; make room and rerun the same command with --resume"


def _progress_text(partial: Path) -> str:
    """'N of M regions done' for an interrupted run's partial file."""
    progress = partial_progress(partial)
    if progress is None:
        return "unreadable, regions done unknown"
    return f"{progress[0]:,} of {counted(progress[1], 'region')} done"


def embed_regions(
    engine: Engine,
    reference: Fasta,
    regions: Sequence[Region],
    out: EmbeddingFile,
    *,
    window: int,
    overlap: int,
    rc: str = "auto",
    quiet: bool = True,
) -> EmbedStats:
    """Embed every region of `regions` (the rows of `out`) not yet marked done in `out`.

    Long regions are tiled (`window`, `overlap`; each base kept from its most central tile). The
    caller creates or resumes `out` and calls `out.finish()` after; a progress bar shows on a
    terminal unless `quiet`.
    """
    done = out.done
    jobs = [(row, region) for row, region in enumerate(regions) if not done[row]]
    if len(jobs) < len(regions):
        log.info("resuming: %s of %s already done", f"{len(regions) - len(jobs):,}", counted(len(regions), "region"))
    bases, seconds = map_tiles(
        engine, reference, jobs, window=window, overlap=overlap, head="embed", rc=rc, consume=_RegionSink(out),
        quiet=quiet, with_mask=out.layout.soft_mask,
    )  # fmt: skip
    return EmbedStats(len(regions) - len(jobs), len(jobs), bases, seconds)


class _RegionSink:
    """The write-behind stage's consumer: each tile's kept rows into its region of the file."""

    def __init__(self, out: EmbeddingFile):
        self._out = out
        self._region: RegionWriter | None = None

    def __call__(self, item: tuple[TileKey, np.ndarray]) -> None:
        key, rows = item
        if key.first:
            self._region = self._out.region(key.row, key.region.end - key.region.start)
        self._region.add(rows, key.mask)
        if key.last:
            self._region.close()

"""Matching contig names from BED/VCF/-r inputs to the contig names of a FASTA.

The one place where `chr1` <-> `1`, `chrM` <-> `MT` and `--chrom-map` are decided, so that
`embed` and `score-variants` agree on which records land on which contig.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from caduceus_cli.errors import InputError

log = logging.getLogger("caduceus")

_MITOCHONDRIAL = {"M", "MT"}


def read_chrom_map(path: str | Path) -> dict[str, str]:
    """Read a `--chrom-map` file: two whitespace-separated columns, input name then FASTA name.

    Blank lines and lines starting with `#` are ignored. The same input name given twice with
    different targets is an error, as is any line without exactly two columns.
    """
    mapping: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, start=1):
                fields = line.split()
                if not fields or fields[0].startswith("#"):
                    continue
                if len(fields) != 2:
                    raise InputError(f"{path}:{lineno}: expected two columns 'old new', found {len(fields)}")
                old, new = fields
                if mapping.get(old, new) != new:
                    raise InputError(
                        f"{path}:{lineno}: '{old}' is mapped twice ('{mapping[old]}' and '{new}')"
                    )
                mapping[old] = new
    except FileNotFoundError:
        raise InputError(f"{path}: chromosome map file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: chromosome map is not a text file") from None
    return mapping


def alias_key(name: str) -> str:
    """The name with any `chr` prefix (any case) removed and `M`/`MT` (any case) folded to `MT`.

    Two names with the same key are taken to mean the same contig.
    """
    bare = name[3:] if name[:3].lower() == "chr" and len(name) > 3 else name
    return "MT" if bare.upper() in _MITOCHONDRIAL else bare


class ContigMatcher:
    """Resolves input contig names to FASTA contig names.

    Order: the exact FASTA name; then the chrom map (its target is matched exactly, then by
    alias); then the alias rule of `alias_key`. A name matching two FASTA contigs is an
    InputError rather than a guess. Results are memoised: inputs repeat the same few names.
    """

    def __init__(self, fasta_names: Sequence[str], chrom_map: dict[str, str] | None = None):
        self._names = set(fasta_names)
        self._chrom_map = dict(chrom_map or {})
        self._by_alias: dict[str, list[str]] = {}
        for fasta_name in fasta_names:
            self._by_alias.setdefault(alias_key(fasta_name), []).append(fasta_name)
        self._memo: dict[str, str | None] = {}

    def resolve(self, name: str) -> str | None:
        """The FASTA contig meant by `name`, or None when no contig matches."""
        if name not in self._memo:
            self._memo[name] = self._resolve(name)
        return self._memo[name]

    def _resolve(self, name: str) -> str | None:
        if name in self._names:
            return name
        target = self._chrom_map.get(name, name)
        if target in self._names:
            return target
        candidates = self._by_alias.get(alias_key(target), [])
        if len(candidates) > 1:
            raise InputError(
                f"contig '{name}' matches several FASTA contigs ({', '.join(candidates)}); "
                "use --chrom-map to say which"
            )
        if not candidates:
            return None
        log.info("contig '%s' read as FASTA contig '%s' (chr/M/MT naming; --chrom-map overrides)", name, candidates[0])
        return candidates[0]


def name_sample(names: Sequence[str], limit: int = 5) -> str:
    """A few names for an error message: 'chr1, chr2, chr3, ... (25 in all)'."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"

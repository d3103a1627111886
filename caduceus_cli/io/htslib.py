"""htslib's messages: it writes them to file descriptor 2, out of Python's reach.

`HtslibMessages` sends them to a temporary file while active, relays warnings as log warnings
(each once, noise dropped) and hands errors back for one-line error messages.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading

log = logging.getLogger("caduceus")

_HTSLIB_LINE = re.compile(r"^\[([EW])::([\w]+)\]\s*(.*)$")
# htslib lines that say nothing the user can act on: the index probe when opening a .vcf.gz,
# and the follow-up to every "not defined in the header" warning.
_HTSLIB_NOISE = ("Could not retrieve index file", "Missing headers may cause later processing to fail")
# libBigWig's lines ("[bwClose] ...", "[pyBwOpen] ..."): it prints them only on failures that the
# track writer detects itself (an exception, or the closed file read back) and reports as the error
_LIBBIGWIG_LINE = re.compile(r"^\[(bw|pyBw|url)\w*\] ")


class HtslibMessages:
    """Send what htslib writes to file descriptor 2 to a temporary file while active.

    Python's own stderr (logging, progress, the final error line) keeps going to the real
    stderr: when `sys.stderr` is the process's fd 2 it is replaced, for the duration, by a
    stream on a duplicate of the original descriptor.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read_upto = 0
        self._warned: set[str] = set()

    def __enter__(self) -> HtslibMessages:
        sys.stderr.flush()
        self._saved_fd = os.dup(2)
        self._sink = tempfile.TemporaryFile()
        self._saved_stream = None
        if _is_fd2(sys.stderr):
            self._saved_stream = sys.stderr
            sys.stderr = open(os.dup(self._saved_fd), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
            _point_log_handlers(self._saved_stream, sys.stderr)
        os.dup2(self._sink.fileno(), 2)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.relay_warnings()
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        if self._saved_stream is not None:
            # log handlers, made before or meanwhile, write to the stand-in: point them back
            stand_in, sys.stderr = sys.stderr, self._saved_stream
            _point_log_handlers(stand_in, sys.stderr)
            stand_in.close()
        self._sink.close()

    def _new_lines(self) -> list[str]:
        with self._lock:
            self._sink.seek(self._read_upto)
            data = self._sink.read()
            self._read_upto += len(data)
        return data.decode(errors="replace").splitlines()

    def relay_warnings(self, where: str = "") -> list[str]:
        """Log new htslib warnings once each (prefixed by `where`); return new error texts."""
        errors = []
        for line in self._new_lines():
            match = _HTSLIB_LINE.match(line)
            text = match.group(3) if match else line.strip()
            if not text or any(noise in text for noise in _HTSLIB_NOISE) or _LIBBIGWIG_LINE.match(line):
                continue
            if match and match.group(1) == "E":
                errors.append(text)
            elif text not in self._warned:
                self._warned.add(text)
                log.warning("%shtslib: %s", where, text)
        return errors

    def reason(self, fallback: str) -> str:
        """htslib's error text since the last call, for an error message."""
        return "; ".join(self.relay_warnings()) or fallback


def _point_log_handlers(old: object, new: object) -> None:
    """Log handlers that write to the stream `old` write to `new` from now on."""
    for handler in logging.getLogger().handlers + log.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is old:
            handler.setStream(new)


def _is_fd2(stream: object) -> bool:
    try:
        return stream.fileno() == 2  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False



def compression(path: str) -> str:
    """'bgzf', 'gzip' (plain, which htslib cannot seek in) or '' (not compressed), from the first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(18)
    if head[:2] != b"\x1f\x8b":
        return ""
    # BGZF is gzip with an extra field whose subfield id is 'BC' (SAM spec, section 4.1).
    has_extra = len(head) >= 14 and head[3] & 0x04
    return "bgzf" if has_extra and head[12:14] == b"BC" else "gzip"

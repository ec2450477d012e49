"""Progress of long jobs: a live bar on a terminal, a line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_SECONDS = 0.1
LINE_SECONDS = 5.0
BAR_WIDTH = 24


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Counts done units against a total and reports rate and ETA."""

    def __init__(
        self, label: str, total: int, unit: str = "rows", stream: TextIO | None = None
    ) -> None:
        self.label = label
        self.total = max(total, 0)
        self.unit = unit
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.done = 0
        self.started = time.monotonic()
        self._shown = self.started

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        interval = REDRAW_SECONDS if self.interactive else LINE_SECONDS
        if now - self._shown >= interval:
            self._shown = now
            self._show(final=False)

    def finish(self) -> None:
        self._show(final=True)

    def status(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        share = self.done / self.total if self.total else 1.0
        remaining = (self.total - self.done) / rate if rate > 0 else 0.0
        text = (
            f"{self.label} {share:4.0%} {self.done:,}/{self.total:,} {self.unit} "
            f"{rate:,.0f} {self.unit}/s"
        )
        if self.done < self.total:
            text += f" ETA {_duration(remaining)}"
        else:
            text += f" in {_duration(elapsed)}"
        if self.interactive:
            filled = round(BAR_WIDTH * min(share, 1.0))
            text = text.replace(f"{share:4.0%}", f"{share:4.0%} |{'#' * filled:<{BAR_WIDTH}}|", 1)
        return text

    def _show(self, final: bool) -> None:
        if self.interactive:
            self.stream.write("\r" + self.status() + ("\n" if final else ""))
        else:
            self.stream.write(self.status() + "\n")
        self.stream.flush()

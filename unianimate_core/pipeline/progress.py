"""A dependency-free progress bar for the command line (stderr, one line, redrawn in place).

tqdm is not a dependency of the pack; this bar does the one thing the CLI needs: show steps done,
rate and time left, and degrade to occasional plain lines when stderr is not a terminal (CI logs).
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressBar:
    """``bar = ProgressBar(total, "sampling"); bar.update(); ...; bar.close()``.

    On a terminal the line is redrawn at most 10 times a second; otherwise a line is printed every
    10 % (and at the end), so logs stay short.
    """

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None, width: int = 30,
                 initial: int = 0) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = min(max(int(initial), 0), self.total)
        self.initial = self.done  # work done before this bar started (a resumed run): not in the rate
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._closed = False

    def set_total(self, total: int) -> None:
        self.total = max(int(total), 1)

    def update(self, n: int = 1, info: str = "") -> None:
        self.done = min(self.done + n, self.total)
        self._draw(info)

    def _line(self, info: str) -> str:
        elapsed = time.monotonic() - self.start
        frac = self.done / self.total
        filled = int(round(frac * self.width))
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        bar = "#" * filled + "-" * (self.width - filled)
        extra = f" {info}" if info else ""
        return (f"{self.label} [{bar}] {self.done}/{self.total} {frac:4.0%} "
                f"{_fmt_seconds(elapsed)}<{_fmt_seconds(eta)} {rate:.2f} it/s{extra}")

    def _draw(self, info: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if self._tty:
            if force or now - self._last_draw > 0.1 or self.done == self.total:
                self.stream.write("\r" + self._line(info) + "\x1b[K")
                self.stream.flush()
                self._last_draw = now
        else:
            decile = int(10 * self.done / self.total)
            if decile != self._last_decile or force:
                self.stream.write(self._line(info) + "\n")
                self.stream.flush()
                self._last_decile = decile

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._tty:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

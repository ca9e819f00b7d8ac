"""A dependency-free progress line on stderr (opt-in: the library never prints otherwise)."""

from __future__ import annotations

import sys
import time

from .safe_text import term_text


class Progress:
    """``with Progress(total, enabled) as p: p.update(label)`` draws ``[####....] 3/10 label``."""

    def __init__(self, total: int, enabled: bool = True, stream=None, width: int = 30):
        self.total = max(total, 1)
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0
        self.start = time.perf_counter()

    def __enter__(self):
        return self

    def update(self, label: str = "") -> None:
        self.done += 1
        if not self.enabled:
            return
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        shown = term_text(label)[:40]  # (a layer name from a file: no escape sequence reaches the terminal)
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} {elapsed:6.1f}s ETA {eta:6.1f}s {shown:<40}")
        self.stream.flush()

    def __exit__(self, *exc):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
        return False

"""Progress bars for foreground runs: one per run, on a terminal only."""

from __future__ import annotations

import shutil
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # tqdm loads with the first bar: not at all off a terminal
    from tqdm import tqdm


class ProgressBars:
    """An engine listener drawing a tqdm bar per run while stderr is a TTY.

    The size comes from ``shutil`` so that a terminal reporting 0x0 (a bare pty)
    still gets a bar.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bars: dict[int, tqdm] = {}

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if not self.enabled:
            return
        run_id = data["run_id"]
        if kind == "progress":
            bar = self.bars.get(run_id)
            if bar is None:
                from tqdm import tqdm

                size = shutil.get_terminal_size()
                # rows from the first drawing on: a run over before a redraw shows them
                bar = self.bars[run_id] = tqdm(
                    total=data["size"], unit="B", unit_scale=True, leave=False,
                    desc=f"{data['job']} #{run_id}", postfix={"rows": data["processed"]},
                    file=sys.stderr, ncols=size.columns, nrows=size.lines)
            bar.set_postfix(rows=data["processed"], refresh=False)
            bar.update(data["position"] - bar.n)
        elif kind == "run_finished" and run_id in self.bars:
            self.bars.pop(run_id).close()

"""The benchmark's CSV files: N rows with shuffled ids, and a copy with 1 % of the titles
changed; each generated once per N by a subprocess of this file and reused."""

from __future__ import annotations

import argparse
import array
import csv
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from ingest_run import say

HERE = str(Path(__file__).resolve())
CSV_VERSION = 1  # bump when the generated CSV changes, so cached files are regenerated
CHANGED_EVERY = 100  # the 1 % re-sync file changes the title of every 100th row
WORDS = ("Blue", "Night", "Echo", "River", "Gold", "Silent", "Neon", "Summer",
         "Paper", "Velvet", "Wild", "Glass", "Honey", "Stone", "Ghost", "Ember")
GENRES = ("Rock", "Jazz", "Pop", "Blues", "Electronic", "Hip-Hop", "Folk", "Classical", "Anime")


def parse_count(text: str) -> int:
    """Parse a row count such as ``100000``, ``100k`` or ``1M``."""
    text = text.strip().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        value = int(float(text[:-1]) * scale) if scale > 1 else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a row count: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("row count must be positive")
    return value


def write_csv(n: int, path: str) -> None:
    """Write N rows with ids 1..N shuffled by Random(42) and values derived from the id."""
    ids = array.array("l", range(1, n + 1))
    random.Random(42).shuffle(ids)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("id", "song_name", "artist_name", "music_genre", "year"))
        writer.writerows(
            (
                i,
                f"{WORDS[i % 16]} {WORDS[i // 16 % 16]} (Take {i})",
                f"{WORDS[i // 256 % 16]} Band {i % 9973}",
                GENRES[i % len(GENRES)],
                1950 + i * 7 % 75,
            )
            for i in ids
        )


def write_changed_csv(src: str, dst: str) -> None:
    """Copy src with the title of every CHANGED_EVERY-th row changed (1 % of the rows)."""
    with (
        open(src, newline="", encoding="utf-8") as f,
        open(dst, "w", newline="", encoding="utf-8") as out,
    ):
        reader, writer = csv.reader(f), csv.writer(out, lineterminator="\n")
        writer.writerow(next(reader))
        for i, row in enumerate(reader, 1):
            if i % CHANGED_EVERY == 0:
                row[1] += " (remastered)"
            writer.writerow(row)


def make_csv(workdir: Path, n: int, changed: bool = False) -> Path:
    """The CSV for N rows, or its 1 %-changed copy; generated once (cached by N in workdir).

    It is written by a subprocess: a child's ru_maxrss includes the RSS of the process it
    was spawned from, so this process must stay small for the figures to be honest.
    """
    path = workdir / f"music-v{CSV_VERSION}-{n}{'-changed' if changed else ''}.csv"
    if path.exists():
        return path
    tmp = path.with_suffix(".csv.tmp")
    t0 = time.perf_counter()
    mode = ["--_change", str(make_csv(workdir, n))] if changed else ["--_gen", str(n)]
    subprocess.run([sys.executable, HERE, *mode, str(tmp)], check=True)
    os.replace(tmp, path)
    size = path.stat().st_size
    say(f"generated {path} ({size / n:.0f} bytes a row) in {time.perf_counter() - t0:.1f} s")
    return path


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "--_gen":
        write_csv(int(args[0]), args[1])
    elif mode == "--_change":
        write_changed_csv(*args)
    else:
        sys.exit("this file is used by bench/ingest.py")

"""Export throughput of the REST target against the Broadstreet fake, side by side.

1. creates/s at concurrency 4 against a fake answering in 20 ms, against the ideal
   (4 / 20 ms = 200/s); goal at least 0.8 of the ideal;
2. a run limited to ``--rate``/s, against that limit; goal within 5%.

Each figure is one ``syncd sync`` of a fresh SQLite store, through the engine, the id
map (intents committed before each batch's creates) and the HTTP client.

    .venv/bin/python bench/rest_export.py [--records 600] [--rate 50]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import export_setup as ex  # noqa: E402
from tests.fakes.broadstreet import BroadstreetFake  # noqa: E402

SYNCD = str(Path(sys.executable).with_name("syncd"))


def export(records: int, latency: float, extra: str) -> tuple[float, int]:
    """Seconds spent creating ``records`` networks (first to last create), and creates."""
    with tempfile.TemporaryDirectory() as tmp, BroadstreetFake(latency=latency) as api:
        root = Path(tmp)
        ex.load(root, {"networks": [{"id": i, "name": f"N{i}"} for i in range(1, records + 1)]})
        cfg = ex.write_config(root, api.url, batch_rows=200, remote_extra=extra)
        done = subprocess.run([SYNCD, "sync", "networks_out", "--config", str(cfg)],
                              capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise SystemExit(done.stdout + done.stderr)
        posts = [t for m, _, t in api.requests if m == "POST"]
        return posts[-1] - posts[0] + latency, len(posts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=600)
    parser.add_argument("--rate", type=int, default=50)
    args = parser.parse_args()
    began = time.monotonic()
    seconds, creates = export(args.records, 0.020, "concurrency = 4")
    ideal = 4 / 0.020
    rate_s, rate_n = export(args.records // 3, 0.0, f'rate_limit = "{args.rate}/s"')
    print(f"{'':28}{'measured':>12}{'reference':>12}{'ratio':>8}")
    print(f"{'creates/s, concurrency 4':28}{creates / seconds:12.1f}{ideal:12.1f}"
          f"{creates / seconds / ideal:8.2f}")
    print(f"{'creates/s, rate limited':28}{rate_n / rate_s:12.1f}{args.rate:12.1f}"
          f"{rate_n / rate_s / args.rate:8.2f}")
    print(f"({time.monotonic() - began:.0f}s in all)")


if __name__ == "__main__":
    main()

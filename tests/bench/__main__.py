"""``python -m tests.bench [--scale full|smoke]``: start a local stack, measure, write reports/bench.*."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from local_stack import stack
from local_stack.config import StackConfig
from tests.bench.harness import Scale, markdown, run


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    p.add_argument("--scale", choices=["full", "smoke"], default="full")
    p.add_argument("--reports", default="reports")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ca4-bench-") as tmp:
        cfg = StackConfig.ephemeral(Path(tmp) / "stack")
        try:
            stack.up(cfg)
            report = run(cfg, Scale.named(args.scale), Path(tmp), Path(args.reports))
        finally:
            stack.down(cfg)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Collision statistics of any ``index.json``: ``python -m gream_pipeline.index.stats PATH [--levels H]``.

Uses the same definitions as the index stage's ``report.json`` (see :func:`gream_pipeline.index.ids.collision_stats`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gream_pipeline.data.lcrec import read_json_object
from gream_pipeline.errors import GreamError
from gream_pipeline.index.ids import collision_stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--levels", type=int, default=None, help="ID positions compared (default: shortest ID)")
    args = parser.parse_args(argv)
    try:
        index = read_json_object(args.path)
        stats = collision_stats(index, args.levels)
    except GreamError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"path": str(args.path), **stats}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m ca4_events schema``: print the event JSON Schema (schemas/ holds the published copy)."""

import argparse
import json
import sys

from ca4_events.schema import json_schema


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m ca4_events", description="CA4 event schema tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("schema", help="print the JSON Schema of a version-1 event")
    parser.parse_args(argv)
    json.dump(json_schema(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

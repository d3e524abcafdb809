"""Dispatch ``python -m benchmarks <name> [args]`` to ``benchmarks.<name>.main``."""

from __future__ import annotations

import importlib
import os
import sys


def available() -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    names = []
    for entry in os.listdir(here):
        if entry.startswith("_") or not entry.endswith(".py"):
            continue
        names.append(entry[: -len(".py")])
    return sorted(names)


def _usage(out) -> None:
    print("usage: python -m benchmarks <name> [args]", file=out)
    print("available: " + ", ".join(available()), file=out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        _usage(sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in available():
        print(f"unknown benchmark: {name!r}", file=sys.stderr)
        _usage(sys.stderr)
        return 2
    # import_module works for names that are Python keywords (e.g. "async").
    module = importlib.import_module(f"{__package__ or 'benchmarks'}.{name}")
    result = module.main(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())

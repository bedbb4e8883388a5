"""`python -m bench [name ...]` runs every bench/bench_*.py module's `main()` (or only the named ones)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in argv] or names
    status = 0
    for name in wanted:
        if name not in names:
            print(f"unknown benchmark {name}; have {', '.join(names)}", file=sys.stderr)
            return 2
        print(f"== {name}")
        status |= int(importlib.import_module(f"bench.{name}").main() or 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

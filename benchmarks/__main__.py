"""Run every benchmarks/bench_*.py and print its figures: python -m benchmarks [NAME ...]."""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import sys
import time

import torch

from benchmarks import calibration, cpu_name


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([os.path.dirname(__file__)]) if m.name.startswith("bench_"))
    wanted = [a if a.startswith("bench_") else f"bench_{a}" for a in argv]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {', '.join(n[6:] for n in names)}", file=sys.stderr)
        return 2
    print(
        f"# {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, python {platform.python_version()}"
    )
    print(f"# {calibration()}")
    for name in wanted or names:
        t0 = time.perf_counter()
        print(f"\n## {name[6:]}")
        try:
            for line in importlib.import_module(f"benchmarks.{name}").run():
                print(line, flush=True)
        except Exception as e:  # a broken benchmark is reported, and the others still run
            print(f"FAILED: {type(e).__name__}: {e}")
        print(f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

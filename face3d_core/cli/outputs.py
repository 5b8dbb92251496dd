"""Output file names of the command line: unique within a run, never one of the run's inputs.

Rules (docs/usage.md, Command line):

* one run never writes two results to one name. ``face3d depth`` names a photo's maps after its
  stem; photos whose stems are equal (ignoring case, for case-insensitive disks) keep their
  extension in it (``x.jpg``, ``x.png`` -> ``x_jpg``, ``x_png``), and names still equal get
  ``_2``, ``_3`` ... in the order given;
* an output never replaces one of the run's inputs (:func:`check_not_inputs`);
* a file left by an earlier run under an output's name is replaced.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from face3d_core.errors import ExportError


def _stem(path: str | os.PathLike) -> str:
    return Path(path).stem or "image"


def unique_stems(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Output stems for ``paths``, all different (ignoring case); see the module docstring.

    Example:
        >>> unique_stems(["x.jpg", "x.png", "x_1.jpg", "a/y.jpg", "b/y.jpg"])
        ['x_jpg', 'x_png', 'x_1', 'y_jpg', 'y_jpg_2']
    """
    stems = [_stem(p) for p in paths]
    counts = Counter(stem.casefold() for stem in stems)
    # a stem no other photo has is kept as is (and reserved); the others are qualified
    result: list[str] = [stem if counts[stem.casefold()] == 1 else "" for stem in stems]
    taken = {stem.casefold() for stem in result if stem}
    for index, (path, stem) in enumerate(zip(paths, stems, strict=True)):
        if result[index]:
            continue
        suffix = Path(path).suffix.lstrip(".").lower()
        base = f"{stem}_{suffix}" if suffix else stem
        chosen, number = base, 2
        while chosen.casefold() in taken:
            chosen, number = f"{base}_{number}", number + 1
        taken.add(chosen.casefold())
        result[index] = chosen
    return result


def stems_sparing_inputs(
    paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, suffixes: Sequence[str]
) -> list[str]:
    """:func:`unique_stems`, with ``_2``, ``_3`` ... added where an output would be one of ``paths``.

    Args:
        paths: The run's inputs, in order.
        out_dir: The output folder.
        suffixes: What each input writes: ``<stem><suffix>`` in ``out_dir``.
    """
    stems = unique_stems(paths)
    taken = {stem.casefold() for stem in stems}
    out = Path(out_dir)
    for index, stem in enumerate(stems):
        chosen, number = stem, 2
        while overwritten_input([out / f"{chosen}{suffix}" for suffix in suffixes], paths):
            while f"{stem}_{number}".casefold() in taken:
                number += 1
            chosen = f"{stem}_{number}"
            taken.add(chosen.casefold())
        stems[index] = chosen
    return stems


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when two paths name the same file (existing or not)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def overwritten_input(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike | None]) -> str | None:
    """The first input that one of ``outputs`` would overwrite, or None."""
    inputs = [i for i in inputs if i]
    for output in outputs:
        for given in inputs:
            if same_file(output, given):
                return str(given)
    return None


def check_not_inputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike | None]) -> None:
    """Refuse to write an output over one of the run's inputs.

    Raises:
        ExportError: Naming the input and what to do.
    """
    outputs = list(outputs)
    clash = overwritten_input(outputs, inputs)
    if clash is not None:
        raise ExportError(f"An output would overwrite the input {clash}; choose another output name (-o).")


def check_distinct(outputs: Sequence[str | os.PathLike | None]) -> None:
    """Refuse two outputs of one run with the same file name.

    Raises:
        ExportError: Naming the file.
    """
    given = [o for o in outputs if o]
    for i, first in enumerate(given):
        for second in given[i + 1 :]:
            if same_file(first, second):
                raise ExportError(f"Two outputs would go to the same file {first}; give each its own name.")

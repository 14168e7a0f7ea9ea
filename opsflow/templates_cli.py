"""``opsflow templates``: the template of every line of a log file, as a CSV.

Streams: the input is read once, line by line (or CSV row by row), through
``tasks.incidents.templates.TemplateMiner``; rows go to an unnamed scratch file beside the
output. A second pass over that file writes each row's final template (ids merged while
mining resolved, texts as generalized by the end) with ``tasks.common.atomic.atomic_open``,
so the output is never half written. Memory holds the templates, not the lines.
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click

from tasks.common.atomic import atomic_open

PLAIN_SUFFIXES = {".log", ".txt"}
OUTPUT_COLUMNS = ("line", "template_id", "template")


class InputError(ValueError):
    """Bad command-line input; the message names the option and the reason."""


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def read_messages(path: Path, column: str | None) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, message)``: CSV rows' ``column`` or a plain file's lines.

    A file is read as CSV when ``column`` is given and its suffix is not .log/.txt; rows
    are numbered from 1 after the header. A plain file's lines are numbered from 1.

    Raises:
        InputError: the CSV has no header or no such column, or cannot be parsed.
    """
    if column is None or path.suffix.lower() in PLAIN_SUFFIXES:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
            for number, line in enumerate(f, start=1):
                yield number, line.rstrip("\r\n")
        return
    csv.field_size_limit(2**31 - 1)  # log messages can be long
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                raise InputError(f"--input: {path} is empty (no CSV header row)")
            if column not in header:
                shown = ", ".join(header[:20]) + (", ..." if len(header) > 20 else "")
                raise InputError(f"--column: {column!r} is not a column of {path} ({shown})")
            index = header.index(column)
            for number, row in enumerate(reader, start=1):
                yield number, row[index] if index < len(row) else ""
        except csv.Error as exc:
            raise InputError(f"--input: {path} row {reader.line_num}: {exc}") from None


def _load_miner(state_path: Path | None):
    from tasks.incidents.templates import TemplateMiner

    if state_path is None or not state_path.exists():
        return TemplateMiner()
    try:
        return TemplateMiner.from_state(json.loads(state_path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise InputError(f"--state: cannot read {state_path}: {exc}") from None


def extract_templates(
    input_path: Path, output_path: Path, column: str | None, state_path: Path | None = None
) -> tuple[int, int]:
    """Write ``line,template_id,template`` for every message of ``input_path``.

    Args:
        input_path: a CSV (with ``column``) or a plain text file, one message per line.
        output_path: the CSV to write (replaced atomically).
        column: the CSV column holding the message; None for plain text.
        state_path: a JSON miner state to continue from (if it exists) and to save to.

    Returns:
        (lines written, templates at the end).

    Raises:
        InputError: a missing input file, missing column, unreadable state, or a
            missing output or state folder.
    """
    if not input_path.is_file():
        raise InputError(f"--input: no such file: {input_path}")
    if not output_path.parent.is_dir():
        raise InputError(f"--output: folder does not exist: {output_path.parent}")
    if output_path.exists() and output_path.resolve() == input_path.resolve():
        raise InputError("--output: must not be the input file")
    if state_path is not None and not state_path.parent.is_dir():
        raise InputError(f"--state: folder does not exist: {state_path.parent}")
    miner = _load_miner(state_path)

    # Pass 1: mine, writing each row's id and its template as it was then, into an
    # unnamed scratch file beside the output (gone when closed, even after a crash).
    with tempfile.TemporaryFile(
        "w+", encoding="utf-8", newline="", dir=output_path.parent
    ) as first:
        count = 0
        writer = csv.writer(first)
        for number, message in read_messages(input_path, column):
            template_id, text = miner.add(message)
            writer.writerow((number, template_id, text))
            count += 1
        # Pass 2: final ids and texts.
        current = miner.templates()
        first.seek(0)
        with atomic_open(output_path) as out:
            writer = csv.writer(out)
            writer.writerow(OUTPUT_COLUMNS)
            for number, template_id, text in csv.reader(first):
                final_id = miner.resolve(int(template_id))
                writer.writerow((number, final_id, current.get(final_id, text)))
    if state_path is not None:
        with atomic_open(state_path) as f:
            json.dump(miner.state_dict(), f)
    return count, len(current)


@click.command("templates")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Log file: a CSV (with --column) or plain text, one message per line.",
)
@click.option(
    "--column",
    default=None,
    help="CSV column holding the message (e.g. Content); ignored for .log/.txt files.",
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(path_type=Path),
    help="CSV to write: line, template_id, template (written atomically).",
)
@click.option(
    "--state",
    "state_path",
    default=None,
    type=click.Path(path_type=Path),
    help="JSON miner state: continue from it if it exists, save to it at the end.",
)
def templates(
    input_path: Path, column: str | None, output_path: Path, state_path: Path | None
) -> None:
    """Group log lines into templates; write one row per input line to --output."""
    try:
        lines, count = extract_templates(input_path, output_path, column, state_path)
    except InputError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.filename or 'file'}: {exc.strerror or exc}")
    click.echo(f"{lines} lines, {count} templates -> {output_path}", err=True)

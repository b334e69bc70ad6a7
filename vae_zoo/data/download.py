"""Fetching missing dataset files, with a one-line error when that is impossible (offline, read-only)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path

from vae_zoo.errors import DataNotFoundError


def fetch_or_explain(
    directory: Path,
    expected: Sequence[str],
    fetch: Callable[[], object],
    download: bool,
    forms: str = "each plain or .gz",
) -> None:
    """Run ``fetch`` (quietly); on failure, or with ``download`` off, raise DataNotFoundError naming the files."""
    hint = (
        f"dataset files not found in {directory} (expected {', '.join(expected)}{', ' + forms if forms else ''})"
        " -- point VAE_ZOO_DATA_DIR or paths.data_dir at a directory that has them"
    )
    if not download:
        raise DataNotFoundError(hint + ", or set data.download=true to fetch them")
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            fetch()
    except Exception as error:  # noqa: BLE001 -- any failure of the fetch means the same thing to the user
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataNotFoundError(f"{hint}; downloading them failed ({reason})") from None

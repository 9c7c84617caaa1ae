"""Which files a list of paths and folders means: folders walked once (symlink loops and hidden files skipped),
every path kept in the order given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from pynima.images import IMAGE_SUFFIXES, display_name

__all__ = ["hidden", "iter_image_paths", "walk_paths"]

log = logging.getLogger(__name__)


def walk_paths(paths: Iterable[str | Path]) -> Iterator[tuple[Path, str | None]]:
    """(file, None) for files as given and image files under folders (recursively, sorted); (path, problem) for a
    path that does not exist, a folder without images and a subfolder that cannot be listed. See _walk_folder.
    """
    for p in map(Path, paths):
        if p.is_dir():
            yield from _walk_folder(p)
        elif p.exists() or p.is_symlink():
            yield p, None
        else:
            yield p, f"{display_name(p)}: no such file or folder"


def hidden(name: str) -> bool:
    """Whether a file or folder name is hidden: it starts with "." (.thumbnails, macOS's ._x.png AppleDouble files)."""
    return name.startswith(".")


def _walk_folder(top: Path) -> Iterator[tuple[Path, str | None]]:
    """The image files under a folder (by suffix; a folder's files by name, then its subfolders by name), and a
    (path, problem) row for each subfolder that cannot be listed, or for ``top`` if it holds no images.

    Symlinked subfolders are followed; each real folder is walked once: a link back to a folder above (a loop) or a
    second link to a folder already walked is one warning line and not walked again. Hidden files and folders (names
    starting with ".") are left out and counted in one INFO line. Files are not opened here (a FIFO with an image
    suffix is refused, unopened, by load_rgb).
    """
    found = unlisted = hidden_files = hidden_dirs = 0
    errors: list[OSError] = []
    seen = {os.path.realpath(top)}

    def unlistable() -> Iterator[tuple[Path, str]]:  # folders os.walk could not list since the last call
        nonlocal unlisted
        while errors:
            e, unlisted = errors.pop(0), unlisted + 1
            yield Path(e.filename), f"{display_name(Path(e.filename))}: cannot list folder ({e.strerror})"

    for root, dirs, files in os.walk(top, onerror=errors.append, followlinks=True):
        hidden_dirs += sum(map(hidden, dirs))
        dirs[:] = [d for d in sorted(dirs) if not hidden(d) and _first_visit(Path(root) / d, seen)]
        for f in sorted(files):
            if Path(f).suffix.lower() in IMAGE_SUFFIXES:
                hidden_files += hidden(f)
                if not hidden(f):
                    found += 1
                    yield Path(root) / f, None
        yield from unlistable()
    yield from unlistable()
    if hidden_files or hidden_dirs:
        log.info(
            "%s: left out %d hidden image file(s) and %d hidden folder(s) (names starting with '.', such as "
            "macOS ._ files and .thumbnails); give them by name to score them",
            display_name(top),
            hidden_files,
            hidden_dirs,
        )
    if not found and not unlisted:
        yield (
            top,
            (f"{display_name(top)}: no images found (no file with an image suffix: .jpg, .png, .tif, .bmp, .webp...)"),
        )


def _first_visit(folder: Path, seen: set[str]) -> bool:
    """Whether ``folder`` leads to a real folder not walked yet (then it is marked walked); a warning if not."""
    real = os.path.realpath(folder)
    if real not in seen:
        seen.add(real)
        return True
    parent = os.path.realpath(folder.parent)
    loop = parent == real or parent.startswith(real.rstrip(os.sep) + os.sep)
    log.warning(
        "%s: not followed: %s %s",
        display_name(folder),
        "a symlink loop back to" if loop else "a second link to the folder",
        display_name(real),
    )
    return False


def iter_image_paths(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files as given, and image files under folders (recursively, sorted); what cannot be listed is left out."""
    return (p for p, problem in walk_paths(paths) if problem is None)

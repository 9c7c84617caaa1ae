"""The ``pynima`` command line. Heavy modules (torch, piq, skimage) are imported inside commands, so ``--help`` is
instant.

This module is the process around the commands: logging to stderr, the exit codes (2 bad input, 3 a full or
read-only disk, 130 and 143 for SIGINT and SIGTERM), and standard output that fails with one line.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import signal
import sys
import threading
import warnings

from pynima.cli.parser import build_parser
from pynima.errors import PynimaError, Terminated

__all__ = ["EXIT_OS_ERROR", "OS_ERRORS", "QUIET_MODULES", "STDOUT_REFUSED", "extra_for", "main"]

# the modules whose distribution is named otherwise, and those installed by a distribution that requires them
DISTRIBUTIONS = {
    "skimage": "scikit-image",
    "pywt": "PyWavelets",
    "PIL": "pillow",
    "multipart": "python-multipart",
    "python_multipart": "python-multipart",
    "starlette": "fastapi",
    "pydantic": "fastapi",
    "h11": "uvicorn",
    "pyarrow": "ray",
}


def _log_to_stderr(args: argparse.Namespace) -> None:
    """The library logs (logging.getLogger("pynima...")); the CLI shows it on stderr: progress at INFO, nothing but
    warnings with --quiet, everything with -v. Results tables go to stdout.
    """
    import logging

    class Stderr(logging.StreamHandler):  # whatever sys.stderr is when a message comes (tests replace it)
        stream = property(lambda self: sys.stderr, lambda self, value: None)

    logger = logging.getLogger("pynima")
    if not any(type(h).__name__ == "Stderr" for h in logger.handlers):  # main() may run more than once
        handler = Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    quiet = getattr(args, "quiet", False)
    logger.setLevel(logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO)


# disk full, over a quota or a file-size limit, read-only, no permission: one line naming the file, exit 3
OS_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


EXIT_OS_ERROR = 3


def _terminate(signum, frame) -> None:
    raise Terminated()


class _NamedStdout:
    """``sys.stdout`` whose refused writes name where it goes (a redirect into a full disk): the error then reads as
    one line naming the file, and the final flush happens inside main, not in Python's shutdown, which would print
    'Exception ignored' and exit 120.
    """

    def __init__(self, stream) -> None:
        self.stream = stream

    def __getattr__(self, name: str):
        return getattr(self.stream, name)

    def _refused(self, e: OSError) -> OSError:
        if e.errno in OS_ERRORS and e.filename is None:
            try:
                target = os.readlink(f"/proc/self/fd/{self.stream.fileno()}")
            except (OSError, ValueError, AttributeError):  # not Linux, or not a real file descriptor
                target = "standard output"
            e.filename = STDOUT_REFUSED.format(target=target)
        return e

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as e:
            raise self._refused(e) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as e:
            raise self._refused(e) from None


QUIET_MODULES = r"(lightning|lightning_fabric|torch|torchvision|timm|onnxscript|onnx)(\.|$)"


STDOUT_REFUSED = "{target} (standard output: what was written there is incomplete)"


def _prepare_process(args: argparse.Namespace) -> None:
    """Logging to stderr, SIGTERM handled as Ctrl-C, and the libraries' deprecation notices silenced (unless -v)."""
    _log_to_stderr(args)
    # uvicorn has its own SIGTERM handling (it finishes the requests in flight); a handler is the main thread's alone
    if args.command != "serve" and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)  # cleanup as for Ctrl-C, then exit 143
    if not args.verbose:  # deprecation notices of the libraries pynima runs on are for their developers
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=QUIET_MODULES)


def _normal(name: str) -> str:
    """A distribution's name as PEP 503 compares them: lower case, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_for(module: str) -> str | None:
    """The optional extra of pynima that installs ``module`` (an import name such as ``torch`` or ``skimage``).

    Read from the installed package's metadata, so the extras are listed once, in pyproject.toml.

    Args:
        module: a top-level import name.

    Returns:
        The first extra that requires the module's distribution; None for a core dependency, a module no extra
        installs, or when pynima's metadata is not installed (run from a source tree without ``pip install``).
    """
    from importlib import metadata

    wanted = _normal(DISTRIBUTIONS.get(module, module))
    try:
        requirements = metadata.requires("pynima") or []
    except metadata.PackageNotFoundError:
        return None
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
        if name and _normal(name[0]) == wanted:
            return extra[1] if extra else None
    return None


def _missing_extra(command: str, e: ModuleNotFoundError) -> int:
    """One line naming the extra that installs a missing module, exit 2; a module no extra has is a bug: raised."""
    extra = extra_for((e.name or "").split(".")[0])
    if extra is None:
        raise e
    print(
        f"pynima {command}: error: needs {e.name}, which the core install leaves out: pip install 'pynima[{extra}]'",
        file=sys.stderr,
    )
    return 2


def _refused_by_the_system(command: str, e: OSError, stdout) -> int:
    """A full or read-only disk (``OS_ERRORS``): one line naming the file, exit 3; other OSErrors are raised."""
    if e.errno not in OS_ERRORS:
        raise e
    where = f"{e.filename}: " if e.filename else ""
    print(f"pynima {command}: error: {where}{e.strerror or e} (the system refused it)", file=sys.stderr)
    if STDOUT_REFUSED.format(target="") in (e.filename or ""):  # drop what could not be written, so that
        with contextlib.suppress(OSError, ValueError):  # Python's exit does not retry it
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
    return EXIT_OS_ERROR


def main(argv: list[str] | None = None) -> int:
    """The ``pynima`` command.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0, 1 when some inputs failed (predict) or the output pipe closed, 2 bad input, 3 a full or
        read-only disk, 130 Ctrl-C, 143 SIGTERM.
    """
    args = build_parser().parse_args(argv)
    _prepare_process(args)
    stdout = sys.stdout
    sys.stdout = _NamedStdout(stdout)
    try:
        code = args.func(args)  # commands return None, or an exit code when partial failure is possible (predict)
        sys.stdout.flush()
    except PynimaError as e:
        print(f"pynima {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # the core install scores with ONNX models only; the rest are extras
        return _missing_extra(args.command, e)
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:
        return _refused_by_the_system(args.command, e, stdout)
    finally:
        sys.stdout = stdout
    return int(code or 0)

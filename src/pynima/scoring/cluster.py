"""Scoring on a Ray cluster with Ray Data: ``pynima predict [MODEL] SOURCE --ray [ADDRESS] --out results.parquet``.

``score_dataset`` lists the images of local folders or of any filesystem pyarrow or fsspec reads (``s3://``,
``gs://``...), and returns a lazy Ray Dataset that scores them on a pool of actors, each holding the ONNX model:
one row per file with its path, mean, std, distribution, warning and error. ``write_parquet`` runs it into one Parquet
file. A file that cannot be listed, read or decoded becomes a row with its error, never a failed job, and a scored row
equals what ``pynima predict`` gives for that file (the same decoding policy, crops and network).

Ray is an optional extra (``pip install 'pynima[ray]'``): it is imported inside the functions, so this module imports
without it. docs/cluster-scoring.md has the usage, the schema, the failure semantics and a sizing guide.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pynima.config import DEFAULT_CROPS
from pynima.errors import PynimaError
from pynima.images import IMAGE_SUFFIXES, display_name, load_rgb_bytes, reason
from pynima.scoring.engines import OnnxEngine
from pynima.scoring.models import bundled_model, exported_sidecar
from pynima.scoring.paths import hidden, walk_paths
from pynima.scoring.preprocess import check_crops
from pynima.scoring.results import FIELDS, Result, without_name
from pynima.scoring.scorer import Scorer

__all__ = [
    "MAX_BLOCK_BATCHES",
    "MISSING_RAY",
    "ROW_GROUP",
    "ScoreBatch",
    "init",
    "list_sources",
    "read_failures",
    "schema",
    "score_dataset",
    "write_parquet",
]

if TYPE_CHECKING:
    import numpy as np
    import pyarrow
    import ray.data

log = logging.getLogger(__name__)

MISSING_RAY = "needs Ray (ray[data]), which the core install leaves out: pip install 'pynima[ray]'"
MAX_BLOCK_BATCHES = 16  # a listing block holds at most this many batches: small enough to balance across actors


def _ray() -> Any:
    """The ``ray`` package with Ray Data, or one PynimaError line saying which extra installs it."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray without its data extra lacks pyarrow/pandas
    except ImportError:
        raise PynimaError(MISSING_RAY) from None
    return ray


def schema() -> pyarrow.Schema:
    """The columns of a scored dataset and of the Parquet file: null scores on an error row, a null error when
    scored; warning and error without the path they would start with (as ``pynima predict --format json``).
    """
    import pyarrow as pa

    types = {"mean": pa.float64(), "std": pa.float64(), "distribution": pa.list_(pa.float64())}
    return pa.schema([("path", pa.string())] + [(f, types.get(f, pa.string())) for f in FIELDS])


def init(address: str | None = None) -> bool:
    """Connect this process to Ray: ``address`` ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``; None starts a local
    instance, or joins the cluster RAY_ADDRESS names. False if it was already connected (then it does nothing), so a
    caller shuts down only what it started.
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address or None, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:  # a wrong address, no cluster at "auto"
        lines = str(e).strip().splitlines()
        raise PynimaError(
            f"cannot connect to Ray at {address or 'a new local instance'}: {lines[0] if lines else type(e).__name__}"
        ) from None
    return True


def _utf8(text: str | None) -> str | None:
    r"""Text a Parquet string column can hold: as it is if it is valid UTF-8 (a name with a newline stays lossless),
    else (a file name that is not UTF-8) display_name's escaped form, ``\xff`` for the byte 0xff.
    """
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return display_name(text)
    return text


# ---------------------------------------------------------------------------------------------- listing


def _filesystem(source: str, filesystem: Any) -> tuple[Any, str]:
    """(pyarrow filesystem, path on it) of a URI, or of a path on the given pyarrow or fsspec ``filesystem``.

    URIs go to pyarrow first (s3://, gs://, hdfs://, file://: credentials from the environment as pyarrow reads
    them), then to fsspec for the schemes only it knows (abfs://, az://... with their fsspec package installed).
    """
    import pyarrow.fs as pafs

    if filesystem is not None:
        if not isinstance(filesystem, pafs.FileSystem):  # an fsspec filesystem, wrapped the way Ray Data does
            filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))
        return filesystem, source.split("://", 1)[-1]
    try:
        return pafs.FileSystem.from_uri(source)
    except Exception as arrow_error:  # noqa: BLE001 - ArrowInvalid for an unknown scheme, OSError for bad buckets
        try:
            import fsspec

            fs, path = fsspec.core.url_to_fs(source)
        except Exception:  # noqa: BLE001 - fsspec missing, or it does not know the scheme either
            raise PynimaError(f"{source}: cannot open its filesystem ({reason(arrow_error)})") from None
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def _walk_remote(source: str, fs: Any, path: str, prefix: str) -> list[tuple[str, str, str | None]]:
    """(shown path, path on ``fs``, problem) for a file, or for each image under a folder (a key prefix), in the
    order of ``pynima predict`` on a local folder (a folder's files by name, then its subfolders by name), hidden
    names left out as there; a missing path, a folder without images and a listing error are one row with the
    problem.
    """
    import pyarrow.fs as pafs

    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            return [(source, path, None)]
        if info.type != pafs.FileType.Directory:
            return [(source, path, "no such file or folder")]
        images = [
            i.path
            for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
            if i.type == pafs.FileType.File and Path(i.path).suffix.lower() in IMAGE_SUFFIXES
        ]
    except OSError as e:
        return [(source, path, f"cannot list ({reason(e)})")]
    start = len(path.rstrip("/")) + 1
    found = [p for p in images if not any(map(hidden, p[start:].split("/")))]
    if len(found) < len(images):  # as pynima predict's folder walk: names starting with "." are left out
        log.info(
            "%s: left out %d hidden image file(s) (a name on their path starts with '.', such as macOS ._ files "
            "and .thumbnails/)",
            source,
            len(images) - len(found),
        )
    if not found:
        return [(source, path, "no images found (no file with an image suffix: .jpg, .png, .tif, .bmp, .webp...)")]
    found.sort(key=lambda p: (tuple(p.split("/")[:-1]), p.rsplit("/", 1)[-1]))
    return [(prefix + p, p, None) for p in found]


def list_sources(sources: Sequence[str | os.PathLike], filesystem: Any) -> tuple[pyarrow.Table, list[Any]]:
    """The files to score as a table (path: as shown, see _utf8; file: what an actor opens, as bytes (a local name
    need not be UTF-8); fs: index into the returned filesystems, -1 for a local file; error: why the row cannot be
    scored, null if it can) and the filesystems.
    """
    import pyarrow as pa

    rows: list[tuple[str | None, bytes, int, str | None]] = []
    filesystems: list[Any] = []
    cwd = Path.cwd()  # actors may run elsewhere: they get absolute paths, the output shows paths as given
    for source in map(str, sources):
        if filesystem is None and "://" not in source:
            rows += [
                (_utf8(str(p)), os.fsencode(cwd / p), -1, _utf8(without_name(problem, p)) if problem else None)
                for p, problem in walk_paths([source])
            ]
            continue
        fs, path = _filesystem(source, filesystem)
        scheme = source.split("://", 1)[0] + "://" if "://" in source else ""
        filesystems.append(fs)
        rows += [
            (shown, file.encode(), len(filesystems) - 1, problem)
            for shown, file, problem in _walk_remote(source, fs, path, scheme)
        ]
    columns = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    table = pa.table(
        {
            "path": pa.array(columns[0], pa.string()),
            "file": pa.array(columns[1], pa.binary()),
            "fs": pa.array(columns[2], pa.int32()),
            "error": pa.array(columns[3], pa.string()),
        }
    )
    return table, filesystems


# ---------------------------------------------------------------------------------------------- scoring


class ScoreBatch:
    """A Ray Data actor: the ONNX model loaded once, then batches of listed files -> rows of ``schema()``.

    Files are read here, not by ``ray.data.read_binary_files``: in Ray 2.60 that fails the whole job when a listed
    file is missing or unreadable at read time (a FileNotFoundError after retries), and ``ignore_missing_paths``
    drops such files without a row. Here each file gets its own try, so it becomes an error row.
    """

    def __init__(self, model: list, crops: str, threads: int, filesystems: list[Any]):
        """``model``: [a reference to the ONNX file's bytes], in a list so that Ray hands over the reference (the
        model goes into the object store once, not once per actor).
        """
        import ray

        with tempfile.TemporaryDirectory() as tmp:  # ONNX Runtime reads the whole file when the session is made
            path = Path(tmp) / "model.onnx"
            path.write_bytes(ray.get(model[0]))
            engine = OnnxEngine(path, threads=threads)
        self.scorer = Scorer(engine, crops=crops, threads=threads)
        self.filesystems = filesystems
        self.pool = ThreadPoolExecutor(threads)  # decoding: Pillow releases the GIL

    def _load(self, shown: str, file: bytes | str, fs: int, error: str | None) -> tuple[np.ndarray, str | None] | str:
        """(crops, warning) of one file, or its error without the path. ``file``: bytes from list_sources (a local
        name as os.fsencode gives it), or text.
        """
        if error is not None:
            return error
        if isinstance(file, bytes):
            file = os.fsdecode(file) if fs < 0 else file.decode()
        try:
            if fs < 0:  # a local file: exactly pynima predict's reading and decoding
                loaded = self.scorer.prepare(Path(file))
                return (
                    without_name(loaded, file)
                    if isinstance(loaded, str)
                    else (loaded[0], loaded[1] and without_name(loaded[1], file))
                )
            try:
                with self.filesystems[fs].open_input_stream(file) as f:
                    data = f.read()
            except FileNotFoundError:
                return "no such file"
            except PermissionError:
                return "cannot read (permission denied)"
            except OSError as e:
                return f"cannot read ({reason(e)})"
            notes: list[str] = []
            x, warning = self.scorer.crops_of(load_rgb_bytes(data, shown, notes), shown, notes)
            return x, warning and without_name(warning, shown)
        except PynimaError as e:
            return without_name(str(e), shown)
        except Exception as e:  # noqa: BLE001 - anything else one file raises is that file's error, not the job's
            log.warning("%s: %s", shown, reason(e))
            return f"cannot score ({reason(e)})"

    def __call__(self, batch: pyarrow.Table) -> pyarrow.Table:
        """One Ray Data batch of paths scored: the batch's rows with their scores or problems."""
        import pyarrow as pa

        paths = batch["path"].to_pylist()
        loaded = list(
            self.pool.map(
                self._load, paths, batch["file"].to_pylist(), batch["fs"].to_pylist(), batch["error"].to_pylist()
            )
        )
        good = [x for x in loaded if not isinstance(x, str)]
        scores = iter(self.scorer.scores([x for x, _ in good], [w for _, w in good]) if good else ())
        rows = [
            Result.of(p, error=x) if isinstance(x, str) else Result.of(p, next(scores))
            for p, x in zip(paths, loaded, strict=True)
        ]
        columns = {"path": paths} | {f: [getattr(r, f) for r in rows] for f in FIELDS}
        for f in ("warning", "error"):
            columns[f] = [_utf8(t) for t in columns[f]]
        return pa.table(columns, schema=schema())


def _model_bytes(model: str | os.PathLike | None, crops: str) -> bytes:
    """The ONNX file that scores (the bundled model, an .onnx, or the export next to a checkpoint), checked here so
    that a bad model, or one that cannot score ``crops``, is one line before any actor starts; actors get its bytes,
    so workers need no copy of it.
    """
    path = bundled_model() if model is None else Path(model)
    onnx = path if path.suffix.lower() == ".onnx" else exported_sidecar(path)
    if onnx is None:
        raise PynimaError(
            f"{path}: scoring on Ray runs the onnx engine, which needs an .onnx file; make one with: "
            f"pynima export {path}"
        )
    check_crops(crops, OnnxEngine(onnx, threads=1))  # a missing, malformed or non-NIMA file is refused here too
    return onnx.read_bytes()


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise PynimaError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def score_dataset(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    model: str | os.PathLike | None = None,
    *,
    crops: str = DEFAULT_CROPS,
    batch_size: int = 32,
    concurrency: int | tuple[int, int] | None = None,
    num_cpus: float = 1,
    filesystem: Any = None,
) -> ray.data.Dataset:
    """A lazy Ray Dataset of scores, one row per file (columns: ``schema()``); nothing runs until it is consumed.

    ``source``: local files and folders (walked as ``pynima predict`` walks them; on a cluster they must be at the
    same path on every node) or URIs (``s3://bucket/prefix``, ``gs://...``), or paths on ``filesystem`` (a pyarrow
    or fsspec filesystem). ``model``: an .onnx file, or a checkpoint with its export next to it; None: the bundled
    model. ``concurrency``: actors, a fixed count or (min, max) for an autoscaling pool; None: from 1 up to what the
    cluster's CPUs hold. ``num_cpus``: CPUs each actor reserves, and the threads it decodes and runs ONNX Runtime
    with. The files are listed now, on this process (the driver); a local Ray instance starts if this
    process is not connected to one (``init``).
    """
    ray = _ray()
    check_crops(crops)
    batch_size = _positive_int("batch_size", batch_size)
    if isinstance(concurrency, tuple):
        low, high = (_positive_int("concurrency", c) for c in concurrency)
        if low > high:
            raise PynimaError(f"concurrency (min, max) needs min <= max, got {concurrency}")
        pool = ray.data.ActorPoolStrategy(min_size=low, max_size=high)
    elif concurrency is None:  # Ray's own default for a class: grows while there are CPUs and work
        high, pool = None, ray.data.ActorPoolStrategy(min_size=1, max_size=None)
    else:
        high = _positive_int("concurrency", concurrency)
        pool = ray.data.ActorPoolStrategy(size=high)
    if isinstance(num_cpus, bool) or not isinstance(num_cpus, numbers.Real) or not num_cpus > 0:
        raise PynimaError(f"num_cpus must be a positive number, got {num_cpus!r}")
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not sources:
        raise PynimaError("no images given to score")
    model_bytes = _model_bytes(model, crops)
    table, filesystems = list_sources(sources, filesystem)
    init()
    # Blocks of whole batches, enough of them for each actor to get several (so a slow file does not hold up the
    # pool's end), but at most MAX_BLOCK_BATCHES batches each (so an autoscaling pool has blocks to spread).
    actors = high or max(1, int(ray.cluster_resources().get("CPU", 1) // num_cpus))
    rows = min(MAX_BLOCK_BATCHES * batch_size, max(batch_size, math.ceil(table.num_rows / (4 * actors))))
    rows = math.ceil(rows / batch_size) * batch_size
    blocks = [table.slice(i, rows) for i in range(0, table.num_rows, rows)] or [table]
    log.info("predict --ray: %d files listed in %d blocks", table.num_rows, len(blocks))
    return ray.data.from_arrow(blocks).map_batches(
        ScoreBatch,
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=pool,
        num_cpus=num_cpus,
        fn_constructor_kwargs={
            "model": [ray.put(model_bytes)],
            "crops": crops,
            "threads": max(1, int(num_cpus)),
            "filesystems": filesystems,
        },
    )


# ---------------------------------------------------------------------------------------------- output

ROW_GROUP = 65536  # rows per Parquet row group: Ray's batches are far smaller, and tiny row groups read slowly


def write_parquet(dataset: ray.data.Dataset, out: str | os.PathLike, overwrite: bool = False) -> tuple[int, int]:
    """Run ``dataset`` (from ``score_dataset``) into one Parquet file ``out``; (rows, failed rows).

    The rows stream back to this process, which writes them: one file wherever the actors ran (Ray's own
    ``Dataset.write_parquet`` writes a folder of files on the nodes that ran the writes, which on a cluster without a
    shared filesystem scatters them; use it for ``s3://`` output). Written to a temporary sibling and renamed at the
    end, so ``out`` is never half-written; an existing ``out`` is refused unless ``overwrite``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pynima.files import atomic_path

    ray = _ray()
    out = Path(out)
    if out.is_dir():
        raise PynimaError(f"{out}: is a folder; give a file name for the Parquet output")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise PynimaError(f"{out}: already exists; remove it or choose another output file")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = failed = 0
    try:
        with atomic_path(out) as tmp, pq.ParquetWriter(str(tmp), schema()) as writer:
            pending: list[pa.Table] = []
            for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                batch = batch.select(schema().names).cast(schema())
                rows += batch.num_rows
                failed += int(pc.sum(pc.is_valid(batch["error"])).as_py() or 0)
                pending.append(batch)
                if sum(t.num_rows for t in pending) >= ROW_GROUP:
                    writer.write_table(pa.concat_tables(pending))
                    pending = []
            if pending:
                writer.write_table(pa.concat_tables(pending))
    except ray.exceptions.RayError as e:  # a worker died, or a bug: the last line says what
        lines = str(e).strip().splitlines()
        raise PynimaError(f"the Ray job failed: {lines[-1] if lines else type(e).__name__}") from None
    log.info("predict --ray: %d rows (%d failed) in %s", rows, failed, out)
    return rows, failed


def read_failures(parquet: str | os.PathLike) -> list[tuple[str, str]]:
    """(path, error) of each failed row of a Parquet file ``write_parquet`` wrote, sorted by path; reads only those
    two columns.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(parquet, columns=["path", "error"])
    table = table.filter(pc.is_valid(table["error"])).sort_by("path")
    return list(zip(table["path"].to_pylist(), table["error"].to_pylist(), strict=True))

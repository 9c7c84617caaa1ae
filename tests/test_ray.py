"""pynima.scoring.cluster and pynima predict --ray on a local Ray instance: the same scores as pynima predict, every
file a row, failed files recorded and never fatal (docs/cluster-scoring.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import pynima  # noqa: E402
from pynima.cli import main  # noqa: E402
from pynima.scoring.cluster import ScoreBatch, list_sources, read_failures, schema, score_dataset, write_parquet  # noqa: E402

pytestmark = pytest.mark.ray

BAD = {
    "trunc.jpg": "truncated file",
    "empty.png": "cannot decode image",
    "text.jpg": "cannot decode image",
    "photo.dng": "camera raw (DNG) is not supported",
    "gone.jpg": "no such file",
}


@pytest.fixture(scope="module")
def local_ray():
    """One local instance for the module (starting Ray costs seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def _photo(rng, h: int, w: int) -> np.ndarray:
    """Smooth noise: compresses like a photo, so JPEG files stay small."""
    small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR))


def _good(folder: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True)
    files = [folder / "big.jpg", folder / "small.png", folder / "sub" / "nested.png", folder / "sub" / "wide.jpg"]
    for path, (h, w) in zip(files, [(384, 512), (100, 150), (300, 300), (240, 700)], strict=True):
        Image.fromarray(_photo(rng, h, w)).save(path)
    return files


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(mixed, good-only): good images (one larger, one smaller than the 224 crop, a nested folder) and, in mixed,
    broken ones: truncated JPEG, zero-byte PNG, text named .jpg, a JPEG named .dng, a file gone since listing."""
    root = tmp_path_factory.mktemp("ray")
    mixed, good = root / "mixed", root / "good"
    _good(mixed)
    _good(good)
    data = (mixed / "big.jpg").read_bytes()
    (mixed / "trunc.jpg").write_bytes(data[: len(data) // 3])
    (mixed / "empty.png").write_bytes(b"")
    (mixed / "text.jpg").write_text("not an image")
    (mixed / "photo.dng").write_bytes(data)
    os.symlink(root / "deleted.jpg", mixed / "gone.jpg")  # listed by the folder walk, then unreadable
    return mixed, good


def _predict_json(*paths, crops: str = "centre") -> dict[str, dict]:
    """What pynima predict --format json gives, by path."""
    rows: dict[str, dict] = {}
    for path, score, error in pynima.load(crops=crops).score_paths(paths):
        rows[str(path)] = {
            "mean": score and score.mean,
            "distribution": score and score.distribution,
            "std": score and score.std,
            "error": error,
        }
    return rows


def _assert_same_scores(rows: list[dict], expected: dict[str, dict], prefix: str = "") -> None:
    for row in rows:
        want = expected[row["path"].removeprefix(prefix)]
        if want["error"]:
            assert row["mean"] is None and row["std"] is None and row["distribution"] is None
            assert want["error"] == f"{row['path'].removeprefix(prefix)}: {row['error']}", row
        else:
            assert row["error"] is None, row
            assert abs(row["mean"] - want["mean"]) < 1e-6 and abs(row["std"] - want["std"]) < 1e-6
            np.testing.assert_allclose(row["distribution"], want["distribution"], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_scores_equal_pynima_predict_and_every_file_is_a_row(local_ray, folders):
    mixed, _ = folders
    missing = mixed.parent / "no-such-folder"
    ds = score_dataset([mixed, missing, f"file://{mixed}"], batch_size=2, concurrency=2)
    rows = ds.take_all()
    assert ds.schema().names == schema().names
    expected = _predict_json(mixed, missing)
    local = [r for r in rows if not r["path"].startswith("file://")]
    remote = [r for r in rows if r["path"].startswith("file://")]
    assert sorted(r["path"] for r in local) == sorted(expected)  # each file exactly once
    _assert_same_scores(local, expected)
    errors = {Path(r["path"]).name: r["error"] for r in local if r["error"]}
    assert set(errors) == {*BAD, "no-such-folder"} and errors["no-such-folder"] == "no such file or folder"
    assert all(errors[name].startswith(start) for name, start in BAD.items()), errors
    assert next(r for r in local if r["path"].endswith("small.png"))["warning"].startswith("150x100 is smaller")
    # the same folder read through pyarrow's filesystem (the s3:// path): the same rows, the same messages; a
    # dangling symlink is not listed there
    assert sorted(r["path"] for r in remote) == sorted(
        f"file://{p}" for p in expected if p != str(missing) and not p.endswith("gone.jpg")
    )
    _assert_same_scores(remote, expected, prefix="file://")


def test_remote_listing_keeps_pynima_predicts_order(folders):
    mixed, _ = folders
    local, _ = list_sources([mixed], None)
    remote, _ = list_sources([f"file://{mixed}"], None)
    assert [p for p in local["path"].to_pylist() if not p.endswith("gone.jpg")] == [
        p.removeprefix("file://") for p in remote["path"].to_pylist()
    ]
    assert local["path"].to_pylist() == [str(p) for p in pynima.scoring.paths.iter_image_paths([mixed])]


def test_a_file_that_vanishes_from_object_storage_is_an_error_row(local_ray, folders):
    from pyarrow.fs import LocalFileSystem

    from pynima.scoring.models import bundled_model

    mixed, _ = folders
    actor = ScoreBatch([ray.put(bundled_model().read_bytes())], "centre", 1, [LocalFileSystem()])
    batch = pa.table(
        {
            "path": ["s3://b/gone.jpg", "s3://b/big.jpg"],
            "file": [str(mixed / "x.jpg"), str(mixed / "big.jpg")],
            "fs": pa.array([0, 0], pa.int32()),
            "error": pa.array([None, None], pa.string()),
        }
    )
    out = actor(batch)
    assert out.schema == schema()
    assert out["error"].to_pylist() == ["no such file", None] and out["mean"][1].as_py() > 0


@pytest.mark.slow
def test_cli_writes_parquet_reports_skipped_files_and_refuses_an_existing_out(local_ray, folders, tmp_path, capsys):
    mixed, _ = folders
    out = tmp_path / "scores.parquet"
    assert main(["predict", str(mixed), "--ray", "--out", str(out), "--batch-size", "3"]) == 1
    captured = capsys.readouterr()
    skipped = sorted(line for line in captured.err.splitlines() if line.startswith("skipped: "))
    assert skipped == [f"skipped: {path}: {error}" for path, error in read_failures(out)]
    assert {Path(path).name for path, _ in read_failures(out)} == set(BAD)
    assert "4 of 9 input(s) scored" in captured.out
    table = pq.read_table(out)
    assert table.schema == schema() and table.num_rows == 9
    _assert_same_scores(table.to_pylist(), _predict_json(mixed))
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]  # no temporary file left behind

    before = out.read_bytes()
    assert main(["predict", str(mixed), "--ray", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before


@pytest.mark.slow
def test_cli_on_good_images_exits_0_with_grid_crops(local_ray, folders, tmp_path, capsys):
    _, good = folders
    out = tmp_path / "deep" / "scores.parquet"
    assert (
        main(
            [
                "predict",
                str(pynima.scoring.models.bundled_model()),
                str(good),
                "--ray",
                "--out",
                str(out),
                "--crops",
                "grid",
                "--concurrency",
                "1",
            ]
        )
        == 0
    )
    assert "skipped" not in capsys.readouterr().err
    _assert_same_scores(pq.read_table(out).to_pylist(), _predict_json(good, crops="grid"))


def test_write_parquet_refuses_an_existing_file(tmp_path):
    out = tmp_path / "x.parquet"
    out.write_text("keep me")
    with pytest.raises(pynima.errors.PynimaError, match="already exists"):
        write_parquet(None, out)
    assert out.read_text() == "keep me"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ray"], "--ray writes a Parquet file: give it with --out"),
        (["--out", "x.parquet"], "--out goes with --ray"),
        (["--concurrency", "2"], "--concurrency goes with --ray"),
        (["--ray", "--out", "x.parquet", "--engine", "torch"], "--engine torch does not apply with --ray"),
        (["--ray", "--out", "x.parquet", "--format", "csv"], "--format does not apply with --ray"),
        (["--ray=photos", "--out", "x.parquet"], "--ray photos: expected an address"),
    ],
)
def test_cli_usage_errors_are_one_line(folders, capsys, args, message):
    assert main(["predict", str(folders[1]), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pynima predict: error: ") and message in err and "\n" not in err


def test_without_ray_the_module_imports_and_the_cli_names_the_extra(folders, tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import pynima.scoring.cluster\n"
        "from pynima.cli import main\n"
        f"sys.exit(main(['predict', {str(folders[1])!r}, '--ray', '--out', {str(tmp_path / 'x.parquet')!r}]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (
        "pynima predict: error: needs Ray (ray[data]), which the core install leaves out: pip install 'pynima[ray]'"
    )
    code = (
        "import json, sys, pynima.scoring.cluster, pynima.cli\n"
        "print(json.dumps(sorted(m for m in ('ray', 'pyarrow') if m in sys.modules)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout) == []

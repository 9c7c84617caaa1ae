"""The dataset readers (pynima.datasets), each on a stand-in written here in that release's exact layout: same file
and column names, header quirks, .mat variable names and shapes, xlsx sheets; a handful of tiny images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pynima.datasets.record import MODEL_SCALE, Scale
from pynima.datasets.registry import detect_format, read_dataset
from pynima.datasets.splits import dataset_split
from pynima.errors import DatasetError
from pynima.model.labels import label_distributions, moments, rebin_votes


def image(path: Path, seed: int = 0, size: tuple[int, int] = (48, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


# ---------------------------------------------------------------------------------------------- scales and labels


def test_scale_maps_worst_to_0_and_best_to_9_both_ways():
    mos, dmos = Scale(1, 5), Scale(100, 0, "DMOS")
    assert mos.to_model(1) == 0 and mos.to_model(5) == 9 and mos.to_model(3) == 4.5
    assert dmos.to_model(100) == 0 and dmos.to_model(0) == 9 and dmos.to_model(25) == pytest.approx(6.75)
    for s in (mos, dmos, MODEL_SCALE):
        assert s.from_model(s.to_model(2.5)) == pytest.approx(2.5)
    assert mos.spread_to_model(0.4) == pytest.approx(0.9) and dmos.spread_to_model(10) == pytest.approx(0.9)
    assert dmos.describe() == "DMOS 0-100, lower is better"


def test_rebin_votes_keeps_the_mean_and_passes_10_bins_through():
    votes = (3, 10, 40, 30, 17)  # KonIQ's 5 levels 1-5
    p = rebin_votes(votes)
    assert p.shape == (10,) and p.sum() == pytest.approx(1)
    level_mean = np.dot(np.arange(1, 6), votes) / sum(votes)
    assert moments(p)[0] == pytest.approx((level_mean - 1) / 4 * 9)
    ava = np.arange(1, 11, dtype=float)
    assert np.allclose(rebin_votes(ava), ava / ava.sum())
    with pytest.raises(ValueError, match="positive total"):
        rebin_votes((0, 0, 0))


# ---------------------------------------------------------------------------------------------- KADID-10k


def kadid(root: Path) -> Path:
    rows = ["dist_img,ref_img,dmos,var"]
    for ref in (1, 2):
        image(root / "images" / f"I{ref:02d}.png", ref)
        for kind, level, dmos, var in ((1, 1, 4.57, 0.496), (1, 5, 1.3, 0.25), (10, 3, 3.0, 1.0)):
            name = f"I{ref:02d}_{kind:02d}_{level:02d}.png"
            image(root / "images" / name, ref * 100 + kind * 10 + level)
            rows.append(f"{name},I{ref:02d}.png,{dmos},{var}")
    write(root / "dmos.csv", "\n".join(rows) + "\n", "\r\n")
    return root


def test_kadid10k(tmp_path):
    root = kadid(tmp_path / "kadid10k")
    assert detect_format(root) == "kadid10k"
    ds = read_dataset(root)
    assert ds.format == "kadid10k" and not ds.authentic and len(ds.records) == 6
    r = ds.records[0]
    assert (r.ref, r.kind, r.level, r.score) == (1, 1, 1, 4.57)
    assert r.mos == pytest.approx((4.57 - 1) / 4 * 9) and r.vote_sd == pytest.approx(0.496 * 9 / 4)  # 'var' is a std
    assert r.reference == root / "images" / "I01.png" and ds.type_names[10] == "JPEG"
    assert moments(label_distributions(ds.records[:1]))[1][0] == pytest.approx(r.vote_sd, abs=1e-4)


def test_kadid10k_one_line_errors(tmp_path):
    root = kadid(tmp_path / "k")
    (root / "images" / "I02_10_03.png").unlink()
    with pytest.raises(DatasetError, match=r"I02_10_03.png \(dmos.csv line 7\): no such image$"):
        read_dataset(root)
    write(root / "dmos.csv", "dist_img,ref_img,score\nI01_01_01.png,I01.png,4\n")
    with pytest.raises(DatasetError, match="dmos.csv: no column dmos"):
        read_dataset(root)
    write(root / "dmos.csv", "dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,nan,0.1\nx.png,I01.png,3,0.1\n")
    with pytest.raises(DatasetError, match=r"dmos.csv line 2: .*\(2 problems in all"):
        read_dataset(root)


# ---------------------------------------------------------------------------------------------- KonIQ-10k

KONIQ_HEADER = '"image_name","c1","c2","c3","c4","c5","c_total","MOS","SD","MOS_zscore"'
KONIQ_SETS = ["training", "training", "training", "validation", "test"]


def koniq(root: Path, scores: bool = True, sets: bool = False, folder: str = "1024x768") -> Path:
    """The scores file of the zip (vote counts, MOS on 1-5) and/or the GitHub sets file (vote fractions, the 0-100
    MOS_zscore in its MOS column, a set column)."""
    rows, set_rows = [KONIQ_HEADER], ["image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set"]
    for i in range(5):
        name = f"{10000 + i}.jpg"
        image(root / folder / name, i)
        votes = [1 + i, 3, 40, 30, 10 + 5 * i]
        mos = np.dot(np.arange(1, 6), votes) / sum(votes)
        rows.append(f'"{name}",' + ",".join(map(str, votes)) + f",{sum(votes)},{mos:.6f},0.7,{mos * 20:.3f}")
        set_rows.append(
            f"{name},"
            + ",".join(f"{v / sum(votes):.12f}" for v in votes)
            + f",{sum(votes)},{mos * 20:.10f},0.7,{KONIQ_SETS[i]}"
        )
    if scores:
        write(root / "koniq10k_scores_and_distributions.csv", "\n".join(rows) + "\n")
    if sets:
        write(root / "koniq10k_distributions_sets.csv", "\n".join(set_rows) + "\n")
    return root


def test_koniq10k_votes_are_the_targets(tmp_path):
    root = koniq(tmp_path / "koniq")
    assert detect_format(root) == "koniq10k"
    ds = read_dataset(root)
    assert ds.authentic and ds.official_split is None and len(ds.records) == 5
    r = ds.records[2]
    assert r.votes == (3, 3, 40, 30, 20) and r.ref == "10002.jpg" and r.vote_sd == pytest.approx(0.7 * 9 / 4)
    auto, maxent = label_distributions(ds.records, "auto"), label_distributions(ds.records, "maxent")
    assert np.allclose(auto[2], rebin_votes(r.votes)) and not np.allclose(auto, maxent)
    assert np.allclose(moments(auto)[0], [x.mos for x in ds.records], atol=1e-5)  # MOS is the mean vote
    split = dataset_split(ds, "reference", (0.6, 0.2, 0.2), 0)
    assert sum(len(split[p]) for p in ("train", "val", "test")) == 5  # by image


def test_koniq10k_official_split_and_512_release(tmp_path):
    both = read_dataset(koniq(tmp_path / "koniq", sets=True, folder="512x384"))
    split = dataset_split(both, "official", (0.7, 0.2, 0.1), 0)
    assert split["train"] == ["10000.jpg", "10001.jpg", "10002.jpg"] and split["val"] == ["10003.jpg"]
    assert split["test"] == ["10004.jpg"]
    sets_only = read_dataset(koniq(tmp_path / "k1", scores=False, sets=True))  # its MOS column is the z-score
    assert [r.score for r in sets_only.records] == pytest.approx([r.score for r in both.records], abs=1e-5)
    assert sets_only.official_split["test"] == ["10004.jpg"]
    with pytest.raises(DatasetError, match="has no official split"):
        dataset_split(read_dataset(koniq(tmp_path / "k2")), "official", (0.7, 0.2, 0.1), 0)


# ---------------------------------------------------------------------------------------------- AVA


def ava(root: Path, n: int = 6) -> Path:
    lines = []
    for i in range(n):
        image_id = 953619 + i
        image(root / "images" / f"{image_id}.jpg", i)
        votes = [0, 1, 5, 17 + i, 38, 36 - i, 15, 6, 5, 1]
        lines.append(" ".join(map(str, [i + 1, image_id, *votes, 1, 22, 1396])))
    write(root / "AVA.txt", "\n".join(lines) + "\n")
    return root


def test_ava_ten_bin_votes_and_official_test_list(tmp_path):
    root = ava(tmp_path / "AVA_dataset")
    write(root / "aesthetics_image_lists" / "generic_test.jpgl", "953619\n953620\n")
    assert detect_format(root) == "ava"
    ds = read_dataset(root)
    r = ds.records[0]
    votes = np.array(r.votes)
    assert r.score == pytest.approx(np.dot(np.arange(1, 11), votes) / votes.sum())
    assert r.mos == pytest.approx(r.score - 1)
    assert np.allclose(label_distributions([r])[0], votes / votes.sum())
    split = dataset_split(ds, "official", (0.7, 0.2, 0.1), 3)
    assert split["test"] == ["953619.jpg", "953620.jpg"] and len(split["val"]) == 1 and len(split["train"]) == 3


def test_ava_bad_line(tmp_path):
    root = ava(tmp_path / "a")
    with open(root / "AVA.txt", "a") as f:
        f.write("7 99 1 2 3\n")
    with pytest.raises(DatasetError, match=r"AVA.txt line 7: expected 15 numbers"):
        read_dataset(root)


# ---------------------------------------------------------------------------------------------- CSV


def test_csv_needs_a_scale_and_maps_a_dmos(tmp_path):
    for i in range(3):
        image(tmp_path / "imgs" / f"{i}.png", i)
    csv_file = write(tmp_path / "scores.csv", "path,mos,std\nimgs/0.png,10,5\nimgs/1.png,50,\nimgs/2.png,90,2\n")
    assert detect_format(csv_file) == "csv"
    with pytest.raises(DatasetError, match="needs its scale: --scale WORST BEST"):
        read_dataset(csv_file)
    ds = read_dataset(csv_file, scale=(100, 0))
    assert [r.mos for r in ds.records] == pytest.approx([8.1, 4.5, 0.9]) and ds.scale.kind == "DMOS"
    assert ds.records[0].vote_sd == pytest.approx(0.45) and ds.records[1].vote_sd is None
    assert ds.records[0].key == "imgs/0.png" and ds.authentic
    with pytest.raises(DatasetError, match=r"scores.csv line 2: mos 10 is outside the scale 1-5 .*\(3 problems in all"):
        read_dataset(csv_file, scale=(1, 5))


def test_csv_votes_references_and_errors(tmp_path):
    for i in range(2):
        image(tmp_path / f"{i}.png", i)
    csv_file = write(
        tmp_path / "d.csv", "path,mos,ref,type,level,c1,c2,c3\n0.png,2,a,jpeg,2,1,3,1\n1.png,3,a,blur,1,0,0,4\n"
    )
    ds = read_dataset(csv_file, scale=(1, 3))
    assert not ds.authentic and ds.records[0].votes == (1, 3, 1) and ds.records[1].kind == "blur"
    assert ds.records[1].level == 1 and ds.records[0].ref == "a"
    write(csv_file, "path,mos\n0.png,2\nmissing.png,2\n0.png,1\n")
    with pytest.raises(DatasetError, match=r"missing.png \(d.csv line 3\): no such image \(2 problems in all"):
        read_dataset(csv_file, scale=(1, 3))


def test_detection_refuses_unknown_and_ambiguous_folders(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(DatasetError, match="not a dataset layout pynima knows"):
        detect_format(tmp_path / "x")
    root = kadid(tmp_path / "both")
    write(root / "AVA.txt", "")
    with pytest.raises(DatasetError, match="looks like kadid10k and ava; choose with --format"):
        detect_format(root)
    assert read_dataset(root, format="kadid10k").format == "kadid10k"
    with pytest.raises(DatasetError, match="--scale is for CSV datasets"):
        read_dataset(root, format="kadid10k", scale=(1, 5))


# ---------------------------------------------------------------------------------------------- LIVE Release 2


def cell(strings: list[str], shape: tuple[int, int]) -> np.ndarray:
    """A MATLAB cell array of strings, as scipy.io.savemat writes one."""
    c = np.empty(len(strings), dtype=object)
    c[:] = strings
    return c.reshape(shape)


def live(root: Path, realigned: bool = True) -> Path:
    """982 entries as in the release; all but four are marked as reference copies (orgs 1), so only those four
    images need files."""
    from scipy.io import savemat

    n = 982
    dmos, orgs = np.zeros((1, n)), np.ones((1, n))
    refs = ["bikes.bmp"] * n
    rated = {
        0: ("jp2k", 1, 40.0, "bikes.bmp"),
        227: ("jpeg", 1, 25.5, "parrots.bmp"),
        227 + 233 + 174 + 1: ("gblur", 2, 61.0, "bikes.bmp"),
        981: ("fastfading", 174, 12.0, "parrots.bmp"),
    }
    for i, (folder, k, value, ref) in rated.items():
        dmos[0, i], orgs[0, i], refs[i] = value, 0, ref
        image(root / folder / f"img{k}.bmp", i)
    image(root / "jpeg" / "img2.bmp", 99)  # a reference copy (orgs 1): on disk, never read
    for ref in ("bikes.bmp", "parrots.bmp"):
        image(root / "refimgs" / ref, 7)
    savemat(root / "refnames_all.mat", {"refnames_all": cell(refs, (1, n))})
    savemat(root / "dmos.mat", {"dmos": dmos + 1, "orgs": orgs})
    if realigned:
        savemat(root / "dmos_realigned.mat", {"dmos_new": dmos, "orgs": orgs, "dmos_std": np.full((1, n), 8.0)})
    return root


def test_live_release2_skips_reference_copies_and_prefers_the_realigned_dmos(tmp_path):
    root = live(tmp_path / "databaserelease2")
    assert detect_format(root) == "live"
    ds = read_dataset(root)
    assert [r.key for r in ds.records] == ["jp2k/img1.bmp", "jpeg/img1.bmp", "gblur/img2.bmp", "fastfading/img174.bmp"]
    r = ds.records[1]
    assert (r.ref, r.kind, r.score) == ("parrots", "jpeg", 25.5) and r.reference == root / "refimgs" / "parrots.bmp"
    assert r.mos == pytest.approx((100 - 25.5) / 100 * 9) and r.vote_sd == pytest.approx(8 * 9 / 100)
    assert ds.scale.describe() == "DMOS 0-100, lower is better" and ds.type_names["wn"] == "White noise"
    split = dataset_split(ds, "reference", (0.5, 0.5, 0.0), 0)  # keys, not file names: img1.bmp is in 2 folders
    assert sorted(split["train"] + split["val"]) == sorted(r.key for r in ds.records)
    (root / "dmos_realigned.mat").unlink()
    assert read_dataset(root).records[1].score == 26.5  # dmos.mat


def test_live_wrong_length_and_v73(tmp_path):
    from scipy.io import savemat

    root = live(tmp_path / "l", realigned=False)
    savemat(root / "dmos.mat", {"dmos": np.zeros((1, 980)), "orgs": np.zeros((1, 980))})
    with pytest.raises(DatasetError, match="dmos.mat: 980 entries, LIVE Release 2 has 982"):
        read_dataset(root)
    # a v7.3 file: MATLAB's 128-byte header saying so (version 0x0200), then HDF5, which scipy does not read
    header = b"MATLAB 7.3 MAT-file, HDF5 schema 1.00 .".ljust(116) + bytes(8) + b"\x00\x02IM"
    (root / "dmos.mat").write_bytes(header + bytes(512))
    with pytest.raises(DatasetError, match=r"dmos.mat: a MATLAB v7.3 \(HDF5\) file"):
        read_dataset(root)
    (root / "dmos.mat").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(600))
    with pytest.raises(DatasetError, match="dmos.mat: not a readable MATLAB file"):
        read_dataset(root)


# ---------------------------------------------------------------------------------------------- CSIQ


def csiq(root: Path) -> Path:
    """The workbook's all_by_image sheet: a title, blank rows, the header on row 4 in columns D-I, the image 1600
    stored as a number, levels as floats, padding rows at the end; the folders as the official zip names them."""
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "all_by_distortion"
    ws = book.create_sheet("all_by_image")
    ws["A1"] = "CSIQ DMOS"
    header = ["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"]
    for col, name in enumerate(header, start=4):
        ws.cell(row=4, column=col, value=name)
    rows = [
        (1600, 1, "noise", 1.0, 0.03, 0.062),
        ("sunsetcolor", 3, "jpeg 2000", 5.0, 0.1, 1.0),
        ("elk", 6, "contrast", 3.0, 0.05, 0.4),
        (1600, 5, "blur", 2.0, 0.04, 0.2),
    ]
    for r, values in enumerate(rows, start=5):
        for col, v in enumerate(values, start=4):
            ws.cell(row=r, column=col, value=v)
    ws.cell(row=12, column=4, value=None)
    root.mkdir(parents=True)
    book.save(root / "csiq.DMOS.xlsx")
    for rel in (
        "awgn/1600.AWGN.1.png",
        "jpeg2000/sunsetcolor.jpeg2000.5.png",
        "contrast/elk.contrast.3.png",
        "BLUR/1600.BLUR.2.png",
    ):  # a mirror with an upper-case folder
        image(root / "dst_imgs" / rel, len(rel))
    image(root / "src_imgs" / "1600.png", 1)
    return root


def test_csiq_sheet_with_header_on_row_4(tmp_path):
    root = csiq(tmp_path / "CSIQ")
    assert detect_format(root) == "csiq"
    ds = read_dataset(root)
    assert [r.key for r in ds.records] == [
        "awgn/1600.AWGN.1.png",
        "jpeg2000/sunsetcolor.jpeg2000.5.png",
        "contrast/elk.contrast.3.png",
        "blur/1600.BLUR.2.png",
    ]
    r = ds.records[0]
    assert (r.ref, r.kind, r.level, r.score) == ("1600", "awgn", 1, 0.062)
    assert r.mos == pytest.approx(0.938 * 9) and r.vote_sd == pytest.approx(0.27)
    assert r.reference == root / "src_imgs" / "1600.png" and ds.records[1].mos == 0


def test_csiq_csv_export_and_missing_image(tmp_path):
    root = csiq(tmp_path / "c")
    (root / "csiq.DMOS.xlsx").unlink()
    write(
        root / "csiq.DMOS.csv",
        ",,,,,\n,,,,,\n,,,image,dst_idx,dst_type,dst_lev,dmos_std,dmos\n"
        ",,,1600,1,noise,1,0.03,0.062\n,,,1600,2,jpeg,1,0.03,0.1\n",
    )
    with pytest.raises(DatasetError, match=r"jpeg/1600.JPEG.1.png \(csiq.DMOS.csv row 5\): no such image$"):
        read_dataset(root)


# ---------------------------------------------------------------------------------------------- LIVE Challenge


def livec(root: Path) -> Path:
    from scipy.io import savemat

    names = [f"t{i}.bmp" for i in range(1, 8)] + ["3.bmp", "971.JPG", "100.bmp"]
    for i, name in enumerate(names):
        image(root / "Images" / ("trainingImages" if name.startswith("t") else "") / name, i)
    n = len(names)
    (root / "Data").mkdir()
    savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cell(names, (n, 1))})
    savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.linspace(20, 80, n)[None]})
    savemat(root / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": np.full((1, n), 18.0)})
    return root


def test_livec_leaves_out_the_seven_training_images(tmp_path):
    root = livec(tmp_path / "ChallengeDB_release")
    assert detect_format(root) == "livec"
    ds = read_dataset(root)
    assert [r.key for r in ds.records] == ["3.bmp", "971.JPG", "100.bmp"] and ds.authentic
    assert ds.records[-1].score == 80 and ds.records[-1].mos == pytest.approx(7.2)
    assert ds.records[0].vote_sd == pytest.approx(18 * 9 / 100)


# ---------------------------------------------------------------------------------------------- SPAQ


def test_spaq_resizes_once_to_a_shorter_side_of_512(tmp_path):
    from openpyxl import Workbook

    root = tmp_path / "SPAQ"
    image(root / "TestImage" / "00001.jpg", 1, size=(1200, 900))
    image(root / "TestImage" / "00002.jpg", 2, size=(300, 400))  # smaller: kept as it is
    book = Workbook()
    ws = book.active
    ws.append(["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"])
    ws.append(["00001.jpg", 42.5, 50, 50, 50, 50, 50])
    ws.append(["00002.jpg", 71.0, 50, 50, 50, 50, 50])
    (root / "Annotations").mkdir()
    book.save(root / "Annotations" / "MOS and Image attribute scores.xlsx")
    assert detect_format(root) == "spaq"
    ds = read_dataset(root)
    assert [Image.open(r.path).size for r in ds.records] == [(683, 512), (300, 400)]
    assert ds.records[0].path.parent.name == "TestImage_512" and ds.records[0].key == "00001.jpg"
    assert ds.records[0].mos == pytest.approx(42.5 * 0.09)
    stamp = ds.records[0].path.stat().st_mtime_ns
    assert read_dataset(root).records[0].path.stat().st_mtime_ns == stamp  # reused, not made again
    (root / "TestImage" / "00002.jpg").write_bytes(b"not a jpeg")
    (root / "TestImage_512" / "00002.png").unlink()
    with pytest.raises(DatasetError, match=r"00002.jpg: cannot decode image"):
        read_dataset(root)


# ---------------------------------------------------------------------------------------------- training and evaluating


@pytest.mark.parametrize("layout", ["koniq10k", "ava"])
@pytest.mark.slow
def test_one_epoch_on_vote_histograms(layout, tmp_path):
    """Training reads the layout, splits it officially, trains on the vote histograms and reports the test part on
    the dataset's own scale."""
    from pynima.config import TrainConfig
    from pynima.datasets.splits import apply_split, read_split
    from pynima.evaluation.evaluate import read_predictions
    from pynima.files import read_json
    from pynima.training.items import make_loader
    from pynima.training.train import train

    if layout == "koniq10k":
        root, scale = koniq(tmp_path / "data", sets=True), (1, 5)
    else:
        root, scale = ava(tmp_path / "data"), (1, 10)
        write(root / "aesthetics_image_lists" / "generic_test.jpgl", "953619\n953620\n")
    cfg = TrainConfig(
        data=str(root),
        out=str(tmp_path / "run"),
        epochs=1,
        batch_size=4,
        num_workers=0,
        split="official",
        export_onnx=False,
    )
    out = train(cfg, progress=False)
    ds = read_dataset(root)
    train_part = apply_split(ds.records, read_split(out / "split.json"), "train")
    targets = make_loader(train_part, cfg, False).dataset.targets.numpy()
    assert np.allclose(targets, [rebin_votes(r.votes) for r in train_part], atol=1e-6)
    metrics = read_json(out / "metrics.json")
    assert metrics["format"] == layout and metrics["n_images"] == len(ds.official_split["test"])
    p = read_predictions(out / "predictions.csv")
    assert np.all((p["pred_score"] >= scale[0]) & (p["pred_score"] <= scale[1]))
    assert np.allclose(p["score"], [r.score for r in ds.records if r.key in set(p["name"])], atol=1e-4)


@pytest.mark.slow
def test_cross_dataset_evaluation_of_an_onnx_export(run, tmp_path, capsys):
    """pynima evaluate MODEL.onnx DATA on another layout: the scores on the model's scale and on KADID's 1-5."""
    from pynima.cli import main
    from pynima.files import read_json

    root = kadid(tmp_path / "kadid10k")
    code = main(["evaluate", str(run / "best.onnx"), str(root), "--out", str(tmp_path / "eval")])  # in process
    err = capsys.readouterr().err
    assert code == 0, err
    m = read_json(tmp_path / "eval" / "metrics.json")
    assert m["format"] == "kadid10k" and m["n_images"] == 6 and m["scale"] == "MOS 1-5, higher is better"
    assert m["engine"] == "onnx" and "rmse_dataset_scale" in m
    rows = (tmp_path / "eval" / "predictions.csv").read_text().splitlines()
    assert rows[0].endswith("score,pred_score") and len(rows) == 7
    code = main(["evaluate", str(run / "best.onnx"), str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "not a dataset layout pynima knows" in err and err.strip().count("\n") == 0


def test_dataset_views_read_back_the_same_labels(tiny, tmp_path):
    """scripts/dataset_views.py (the offline cross-dataset table's views): a TID2013-layout dataset written as a CSV
    and in KADID's layout reads back, through those readers, with the same images, scores and targets."""
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "scripts" / "dataset_views.py"
    r = subprocess.run([sys.executable, str(script), str(tiny), "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    original = read_dataset(tiny)
    views = [read_dataset(tmp_path / f"{tiny.name}.csv", scale=(0, 9)), read_dataset(tmp_path / f"{tiny.name}-kadid")]
    assert [v.format for v in views] == ["csv", "kadid10k"]
    for view in views:
        assert [r.path.resolve() for r in view.records] == [r.path.resolve() for r in original.records]
        assert np.allclose([r.mos for r in view.records], [r.mos for r in original.records], atol=1e-5)
        assert np.allclose(label_distributions(view.records), label_distributions(original.records), atol=1e-4)

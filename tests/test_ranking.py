"""Ranking versions of one picture: the ranking term of training, its units, and the within-reference measures."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from pynima.config import TrainConfig
from pynima.datasets.record import TOP
from pynima.datasets.tid2013 import read_tid2013
from pynima.errors import PynimaError
from pynima.evaluation.metrics import within_reference
from pynima.model.labels import label_distributions
from pynima.training.items import AnchorBatchSampler, EpochSampler
from pynima.training.module import ladder_loss, ranking_loss
from pynima.training.versions import clean_anchors

pytestmark = pytest.mark.train


def test_ranking_loss_matches_a_hand_computation():
    nan = math.nan
    mean = torch.tensor([5.0, 5.1, 4.0, 5.05, 9.0, 1.0], requires_grad=True)
    mos = torch.tensor([nan, 4.5, 3.0, 4.4, 0.0, 8.0])  # item 0 is the clean reference of unit 7
    unit = torch.tensor([7, 7, 7, 7, 9, -1])  # item 4 is alone in its unit, item 5 has none
    loss = ranking_loss(mean, mos, unit, margin=0.2)
    # pairs of unit 7, better first: (0,1) 0.2-(-0.1)=0.3; (0,2) 0; (0,3) 0.2-(-0.05)=0.25; (1,2) 0;
    # (1,3) min(0.2, 0.1) - 0.05 = 0.05; (3,2) 0: 0.6 over 6 pairs
    assert loss.item() == pytest.approx(0.1, abs=1e-6)
    loss.backward()
    assert torch.isfinite(mean.grad).all() and mean.grad[4] == 0 and mean.grad[5] == 0
    assert mean.grad[0] < 0 < mean.grad[3]  # the clean image is pushed up, the version above it down
    alone = ranking_loss(mean, mos, torch.tensor([1, 2, 3, 4, 5, 6]), margin=0.2)
    assert alone.item() == 0.0


def test_anchor_batches_are_the_plain_batches_plus_clean_references_cropped_alike(tiny_refs):
    records = read_tid2013(tiny_refs)
    items, anchors = clean_anchors(records)
    assert len(items) == len(records) + 6 and all(math.isnan(r.mos) for r in items[len(records) :])
    assert all(
        items[a].ref == r.ref and items[a].path.parent.name == "reference_images"
        for r, a in zip(records, anchors, strict=True)
    )
    plain = EpochSampler(len(records), seed=3, shuffle=True)
    sampler = AnchorBatchSampler(EpochSampler(len(records), seed=3, shuffle=True), 8, anchors, per_batch=2)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 8  # 60 images in batches of 8
    keys = list(plain)
    for n, batch in enumerate(batches):
        own = keys[n * 8 : n * 8 + 8]
        assert batch[: len(own)] == own  # the same images, order and crops as without the ranking term
        extra = batch[len(own) :]
        assert len(extra) == 2 and [(anchors[i], s) for i, s in own[:2]] == extra  # their references, same seeds
    sampler.sampler.set_epoch(1)  # what Lightning calls
    assert list(sampler) != batches
    camera = [r.__class__(r.path, r.mos, r.mos_std, r.ref, 0, 0, None) for r in records]  # no levels, no references
    assert clean_anchors(camera) == (camera, [None] * len(camera))


def test_clean_references_labelled_at_their_scenes_best_version_plus_the_margin(tiny_refs):
    records = read_tid2013(tiny_refs)
    items, anchors = clean_anchors(records, label_margin=0.3, top=9.0)
    for r, a in zip(records, anchors, strict=True):
        versions = [v for v in records if v.ref == r.ref]
        best = max(versions, key=lambda v: v.mos)  # by hand: the scene's highest MOS, its std
        assert items[a].mos == pytest.approx(min(9.0, best.mos + 0.3)) and items[a].mos_std == best.mos_std
        assert items[a].mos > r.mos
    capped, _ = clean_anchors(records, label_margin=100.0, top=9.0)
    assert all(c.mos == 9.0 for c in capped[len(records) :])


def test_items_keyed_with_one_seed_get_the_same_crop(tiny_refs):
    from pynima.training.items import IQADataset, transforms

    record = read_tid2013(tiny_refs)[0]
    ds = IQADataset([record, record], np.zeros((2, 10), np.float32), transforms((0.5,) * 3, (0.5,) * 3, train=True))
    a, b, c = ds[(0, 11)], ds[(1, 11)], ds[(1, 12)]
    assert torch.equal(a[0], b[0]) and a[4] == b[4] == 11
    assert not torch.equal(a[0], c[0])  # another seed, another crop of the 256x256 image


def test_within_reference_measures_by_hand():
    pred = [5.5, 5.6, 4.0, 3.0, 2.0, 1.0, 7.0]
    mos = [6.0, 5.0, 4.0, 6.0, 5.0, 5.0, 1.0]
    ref = [1, 1, 1, 2, 2, 2, 3]
    kind = [1, 1, 1, 1, 1, 1, 0]
    level = [1, 2, 3, 1, 2, 3, 0]  # the last image has no level: left out
    m = within_reference(
        np.array(pred), np.array(mos), np.array(ref, object), np.array(kind, object), np.array(level), clean={1: 5.4}
    )
    # reference 1 with its clean image 5.4: clean > L1 fails; pairs (c,1) (c,2) (c,3) (1,2) (1,3) (2,3): 3 of 6
    # reference 2 without one: (1,2) and (1,3) right, (2,3) tied in MOS and skipped: 2 of 2
    assert m["clean_beats_level1"] == 0.0 and m["groups_with_clean"] == 1 and m["groups"] == 2
    assert m["ordered_pairs"] == pytest.approx((0.5 + 1.0) / 2)
    # SRCC by hand: reference 1, ranks (2,3,1) against (3,2,1): 1 - 6*2/(3*8) = 0.5; reference 2, ranks (3,2,1)
    # against (3,1.5,1.5): 1.5 / sqrt(2 * 1.5)
    assert m["per_reference"]["1"] == pytest.approx(0.5) and m["per_reference"]["2"] == pytest.approx(1.5 / 3**0.5)
    assert m["per_reference_srcc"] == pytest.approx((0.5 + 1.5 / 3**0.5) / 2)
    empty = within_reference(
        np.array([1.0]), np.array([2.0]), np.array([1], object), np.array([0], object), np.array([0])
    )
    assert math.isnan(empty["ordered_pairs"]) and empty["groups"] == 0


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, "1", True])
def test_ranking_options_are_checked(bad):
    with pytest.raises(PynimaError, match="ranking_weight"):
        TrainConfig(data="d", ranking_weight=bad)
    with pytest.raises(PynimaError, match="ranking_margin"):
        TrainConfig(data="d", ranking_margin=bad)
    with pytest.raises(PynimaError, match="ladder_weight"):
        TrainConfig(data="d", ladder_weight=bad)
    with pytest.raises(PynimaError, match="ladder_photos"):
        TrainConfig(data="d", ladder_photos=3)
    with pytest.raises(PynimaError, match="shift_weight"):
        TrainConfig(data="d", shift_weight=bad)


def test_shift_views_are_two_crops_of_the_batch_at_drawn_offsets():
    from pynima.scale import CROP, SHIFT
    from pynima.training.module import shift_views

    x = torch.rand(8, 3, CROP + SHIFT, CROP + SHIFT)
    views, k = shift_views(x, 0.5, torch.Generator().manual_seed(3))
    ay, ax, by, bx = torch.randint(0, SHIFT + 1, (4,), generator=torch.Generator().manual_seed(3)).tolist()
    assert k == 4 and views.shape == (12, 3, CROP, CROP)
    assert torch.equal(views[:8], x[:, :, ay : ay + CROP, ax : ax + CROP])
    assert torch.equal(views[8:], x[:4, :, by : by + CROP, bx : bx + CROP])
    offsets = {
        tuple(torch.randint(0, SHIFT + 1, (4,), generator=torch.Generator().manual_seed(s)).tolist())
        for s in range(200)
    }
    assert {o for t in offsets for o in t} == set(range(SHIFT + 1))  # every offset 0..SHIFT is drawn
    assert shift_views(x[:2], 0.25, torch.Generator().manual_seed(0))[1] == 1  # at least one image
    with pytest.raises(ValueError, match="240-pixel"):
        shift_views(torch.rand(2, 3, CROP, CROP), 0.5, torch.Generator())


def test_shift_loss_is_the_difference_in_units_of_the_batch_spread():
    import statistics

    from pynima.training.module import SPREAD_FLOOR, shift_loss

    first, second = torch.tensor([1.0, 2.0]), torch.tensor([1.5, 2.0])
    batch = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    loss = shift_loss(first, second, batch)
    assert loss.item() == pytest.approx(0.25 / statistics.stdev([1, 2, 3, 4]), rel=1e-6)  # hand computation
    # shrinking every score by half halves the difference and the spread alike: the term cannot be met that way
    assert shift_loss(first / 2, second / 2, batch / 2).item() == pytest.approx(loss.item(), rel=1e-6)
    loss.backward()  # the spread is not detached: spreading the batch apart lowers the term
    assert batch.grad[0] > 0 > batch.grad[-1]
    flat = shift_loss(first, second, torch.full((4,), 5.0))  # one score for the whole batch: the floor
    assert flat.item() == pytest.approx(0.25 / SPREAD_FLOOR, rel=1e-6)
    assert shift_loss(first, first, batch).item() == 0


def short_run(data, tmp_path, **options) -> TrainConfig:
    """One epoch of batches of 8 on DATA, in the main process, no export: the training tests' config."""
    return TrainConfig(
        data=str(data), out=str(tmp_path / "r"), epochs=1, batch_size=8, num_workers=0, export_onnx=False, **options
    )


@pytest.mark.slow
def test_evaluate_measures_within_reference_ranking_with_the_clean_images(run, tiny_refs, tiny, tmp_path):
    from pynima.evaluation.evaluate import evaluate_checkpoint, format_table, read_predictions
    from pynima.scoring.models import load

    m = evaluate_checkpoint(run / "best.ckpt", tiny_refs, tmp_path / "refs", engine="torch")
    ranking = m["ranking"]
    assert ranking["groups"] == 12 and ranking["groups_with_clean"] == 12 and ranking["references"] == 6
    scorer = load(run / "best.ckpt", engine="torch")
    clean = {
        ref: scorer.score(tiny_refs / "reference_images" / f"I{int(ref):02d}.BMP").mean
        for ref in ranking["clean_scores"]
    }
    assert all(abs(clean[r] - v) < 1e-5 for r, v in ranking["clean_scores"].items())
    p = read_predictions(tmp_path / "refs" / "predictions.csv")
    again = within_reference(p["pred_mean"], p["mos"], p["ref"], p["kind"], p["level"], clean)
    assert again["ordered_pairs"] == pytest.approx(ranking["ordered_pairs"], abs=1e-5)
    assert again["clean_beats_level1"] == pytest.approx(ranking["clean_beats_level1"])
    assert "clean_beats_level1" in format_table(m)
    without = evaluate_checkpoint(run / "best.ckpt", tiny, tmp_path / "plain", engine="torch")["ranking"]
    assert "no reference images" in without["note"] and without["clean_beats_level1"] is None
    assert without["ordered_pairs"] is not None  # the versions are still ranked among themselves


@pytest.mark.slow
def test_training_with_both_ranking_terms_records_them(tiny_refs, ladder_photos, tmp_path):
    """The anchors' ranking term and the ladders' in one short run: both logged, finite, and in config.json."""
    from pynima.files import read_csv, read_json
    from pynima.training.train import train

    cfg = short_run(
        tiny_refs, tmp_path, ranking_weight=0.5, ranking_margin=0.3, ladder_photos=str(ladder_photos), ladder_weight=0.7
    )
    out = train(cfg, progress=False, test=False)
    saved = read_json(out / "config.json")
    assert saved["ranking_weight"] == 0.5 and saved["ranking_margin"] == 0.3
    assert saved["ladder_photos"] == str(ladder_photos) and saved["ladder_weight"] == 0.7
    rows = [r for r in read_csv(out / "metrics.csv") if r.get("train_rank")]
    assert rows and math.isfinite(float(rows[0]["train_rank"])) and float(rows[0]["train_emd"]) > 0
    assert math.isfinite(float(rows[0]["train_ladder"])) and float(rows[0]["train_ladder"]) >= 0


@pytest.mark.slow
def test_training_with_the_shift_term_records_it(tiny_refs, tmp_path):
    """Training crops grow by SHIFT pixels for the two views; the term is logged, finite, and in config.json."""
    from pynima.files import read_csv, read_json
    from pynima.scale import CROP, SHIFT
    from pynima.training.items import make_loader
    from pynima.training.train import train

    cfg = short_run(tiny_refs, tmp_path, shift_weight=0.5, clean_label=True)
    records = read_tid2013(tiny_refs)
    assert next(iter(make_loader(records, cfg, train_mode=True)))[0].shape[-2:] == (CROP + SHIFT, CROP + SHIFT)
    assert next(iter(make_loader(records, cfg, train_mode=False)))[0].shape[-2:] == (CROP, CROP)
    out = train(cfg, progress=False, test=False)
    assert read_json(out / "config.json")["shift_weight"] == 0.5
    rows = [r for r in read_csv(out / "metrics.csv") if r.get("train_shift")]
    assert rows and 0 < float(rows[0]["train_shift"]) < 9 and math.isfinite(float(rows[0]["train_emd"]))


@pytest.mark.slow
def test_training_with_labelled_clean_references_records_it(tiny_refs, tmp_path):
    from pynima.files import read_csv, read_json
    from pynima.training.items import make_loader
    from pynima.training.train import train

    cfg = short_run(tiny_refs, tmp_path, clean_label=True)
    records = read_tid2013(tiny_refs)
    batch = next(iter(make_loader(records, cfg, train_mode=True)))
    mos, target = batch[2], batch[1]
    assert len(mos) == 10 and torch.isfinite(mos).all()  # 8 images + their 2 clean references, all labelled
    assert torch.allclose(target.sum(1), torch.ones(10), atol=1e-5)
    items, _ = clean_anchors(records, label_margin=cfg.ranking_margin, top=9.0)
    # each clean item: its scene's best MOS + the margin
    for m, i in zip(mos[8:].tolist(), batch[3][8:].tolist(), strict=True):
        best = max(r.mos for r in records if r.ref == items[i].ref)
        assert i >= len(records) and m == pytest.approx(best + cfg.ranking_margin, abs=1e-5)
    out = train(cfg, progress=False, test=False)
    assert read_json(out / "config.json")["clean_label"] is True
    rows = [r for r in read_csv(out / "metrics.csv") if r.get("train_emd")]
    assert rows and math.isfinite(float(rows[0]["train_emd"]))


def test_light_versions_one_per_scene_and_type_labelled_between_clean_and_level_1(tiny_refs):
    from pynima.images import load_rgb
    from pynima.training.versions import LIGHT_KINDS, light_versions

    records = read_tid2013(tiny_refs)
    items, anchors = clean_anchors(records, label_margin=0.2, top=9.0)
    out, light, lights = light_versions(records, items, anchors)
    assert len(out) == len(items) + 12 and set(light) == set(range(len(items), len(out)))  # 6 scenes x 2 types
    for r, options in zip(records, lights, strict=True):
        assert len(options) == 1 and light[options[0]].kind == r.kind and out[options[0]].ref == r.ref
    first = records[0]
    spec = light[lights[0][0]]
    level1 = next(r for r in records if (r.ref, r.kind, r.level) == (first.ref, first.kind, 1))
    clean = load_rgb(items[anchors[0]].path)
    by_hand = np.mean((clean.astype(float) - load_rgb(level1.path).astype(float)) ** 2)
    assert spec.level1_mse == pytest.approx(by_hand, rel=1e-5) and spec.level1[0] == level1.mos
    labels = []
    for seed in range(12):
        version, mos, std = spec.make(clean, seed)
        share = min(1.0, np.mean((clean.astype(float) - version.astype(float)) ** 2) / by_hand)
        c = items[anchors[0]].mos
        assert mos == pytest.approx(c - share * (c - level1.mos), abs=1e-6)
        assert level1.mos <= mos <= c and math.isfinite(std)
        labels.append((share, mos))
    assert np.array_equal(spec.make(clean, 5)[0], spec.make(clean, 5)[0])  # a seed gives one version
    shares, moses = zip(*sorted(labels), strict=True)
    assert shares[0] < 0.5 < shares[-1] and list(moses) == sorted(moses, reverse=True)  # more damage, lower label
    assert set(LIGHT_KINDS) >= {1, 8, 10}


def test_loader_adds_light_versions_beside_the_clean_references_only_for_tid2013_types(tiny_refs, caplog):
    from pynima.training.items import make_loader

    records = read_tid2013(tiny_refs)
    cfg = TrainConfig(data=str(tiny_refs), batch_size=8, num_workers=0, clean_label=True, light_versions=True)
    x, target, mos, index, unit, _ = next(iter(make_loader(records, cfg, train_mode=True, tid2013_types=True)))
    assert len(mos) == 12 and torch.isfinite(mos).all()  # 8 images, 2 clean references, 2 light versions
    assert torch.allclose(target.sum(1), torch.ones(12), atol=1e-5)
    assert unit[8:10].tolist() == unit[10:12].tolist() == unit[:2].tolist()  # cropped like the images they pair
    expected = (target * torch.arange(10)).sum(1)
    assert torch.allclose(expected[10:], mos[10:], atol=0.02)  # each target's mean is the item's label
    assert (mos[10:] <= mos[8:10] + 1e-6).all()  # a light version is never labelled above its clean image
    caplog.set_level("WARNING")
    batch = next(iter(make_loader(records, cfg, train_mode=True, tid2013_types=False)))
    assert len(batch[2]) == 10 and "light versions need TID2013" in caplog.text
    with pytest.raises(PynimaError, match="light_versions needs clean_label"):
        TrainConfig(data=str(tiny_refs), clean_label=False, light_versions=True)


def test_ladder_loss_matches_a_hand_computation():
    nan = math.nan
    mean = torch.tensor([5.0, 5.05, 4.0, 6.0, 3.0, 2.0], requires_grad=True)
    rung = torch.tensor([0.0, 0.5, 2.0, nan, 0.0, 1.0])  # items 0-2: one ladder; 3: not on one; 4-5: another unit
    unit = torch.tensor([7, 7, 7, 7, 9, -1])  # item 5 has no unit
    loss = ladder_loss(mean, rung, unit, margin=0.2)
    # pairs of unit 7, lighter first: (0,1) gap 0.2*0.5=0.1, diff -0.05: 0.15; (0,2) gap 0.2 (capped at one level),
    # diff 1.0: 0; (1,2) gap 0.2, diff 1.05: 0. Unit 9 has one ladder item: no pair. 0.15 over 3 pairs
    assert loss.item() == pytest.approx(0.05, abs=1e-6)
    loss.backward()
    assert mean.grad[0] < 0 < mean.grad[1] and mean.grad[2] == 0 and mean.grad[3:].abs().sum() == 0
    assert ladder_loss(mean, torch.full((6,), nan), unit, 0.2).item() == 0.0


@pytest.fixture(scope="module")
def ladder_photos(tiny_refs, tmp_path_factory):
    """Three of tiny_refs' clean references as a folder of unlabelled photos (PNG)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("ladder")
    for path in sorted((tiny_refs / "reference_images").iterdir())[:3]:
        Image.open(path).save(folder / f"{path.stem}.png")
    return folder


def test_ladder_rungs_share_a_type_and_grow_in_damage(ladder_photos):
    from pynima.images import load_rgb
    from pynima.synth.distortions import distort, level_strengths
    from pynima.training.versions import LADDER_KINDS, LADDER_RUNGS, LIGHT_KINDS, LadderRung, ladders

    records, rungs = ladders(ladder_photos, first=100)
    assert len(records) == 3 * LADDER_RUNGS and sorted(rungs) == list(range(100, 100 + 3 * LADDER_RUNGS))
    assert all(math.isnan(r.mos) for r in records) and len({r.name for r in records}) == len(records)
    image = load_rgb(records[0].path)
    strengths = level_strengths()
    kinds = set()
    for seed in range(12):
        kind, levels = LadderRung.draw(seed)
        assert kind in LADDER_KINDS and levels[0] == 0 < levels[1] < levels[2] <= 5
        assert kind in LIGHT_KINDS or levels[1] >= 1  # below level 1 only where strength 0 is the clean image
        kinds.add(kind)
        versions = [LadderRung(r).make(image, seed) for r in range(LADDER_RUNGS)]
        assert np.array_equal(versions[0][0], image) and [v[1] for v in versions] == list(levels)
        mse = [np.mean((v.astype(float) - image.astype(float)) ** 2) for v, _ in versions]
        assert mse[0] == 0 <= mse[1] < mse[2]  # a light blur of a small image may round to the photo itself
        # the lighter rung's strength by hand: linear between the two TID2013 levels around it (level 0: strength 0)
        table = (0.0, *strengths[kind])
        low = int(levels[1])
        strength = table[low] + (levels[1] - low) * (table[low + 1] - table[low])
        assert np.array_equal(versions[1][0], distort(image, kind, strength=strength, seed=seed))
        assert np.array_equal(LadderRung(2).make(image, seed)[0], versions[2][0])  # a seed gives one ladder
    assert not kinds <= set(LIGHT_KINDS) and not kinds & {15, 16, 17}


def test_loader_adds_ladders_of_unlabelled_photos_cropped_alike(tiny_refs, ladder_photos):
    from pynima.errors import DatasetError
    from pynima.training.items import make_loader
    from pynima.training.versions import LADDER_RUNGS

    records = read_tid2013(tiny_refs)
    plain = TrainConfig(data=str(tiny_refs), batch_size=8, num_workers=0, clean_label=False)
    cfg = TrainConfig(
        data=str(tiny_refs), batch_size=8, num_workers=0, clean_label=False, ladder_photos=str(ladder_photos)
    )
    x0, _, _, index0, _, rung0 = next(iter(make_loader(records, plain, train_mode=True)))
    x, target, mos, index, unit, rung = next(iter(make_loader(records, cfg, train_mode=True)))
    assert torch.isnan(rung0).all()
    assert len(x) == 8 + LADDER_RUNGS and torch.equal(index[:8], index0) and torch.equal(x[:8], x0)
    assert torch.isfinite(mos[:8]).all() and torch.isnan(mos[8:]).all()  # the ladder has no label: no EMD
    assert torch.isnan(rung[:8]).all() and rung[8] == 0 and 0 < rung[9] < rung[10]
    assert len(set(unit[8:].tolist())) == 1 and unit[8] not in unit[:8].tolist()  # one crop for the whole ladder
    again = next(iter(make_loader(records, cfg, train_mode=True)))
    assert torch.equal(again[0], x) and torch.equal(again[3], index)  # seeded: a resumed epoch gets the same ladders
    both = TrainConfig(
        data=str(tiny_refs), batch_size=8, num_workers=0, clean_label=True, ladder_photos=str(ladder_photos)
    )
    batch = next(iter(make_loader(records, both, train_mode=True)))
    assert len(batch[0]) == 8 + 2 + LADDER_RUNGS and torch.isfinite(batch[2][:11]).all()
    # with labelled clean references, a ladder's photo is labelled where they sit: by hand, the median over
    # references of (highest MOS of its versions + margin, that version's std); its versions still have no label
    best = {}
    for r in records:
        if r.level > 0 and (r.ref not in best or r.mos > best[r.ref].mos):
            best[r.ref] = r
    clean_mos = float(np.median([min(TOP, r.mos + both.ranking_margin) for r in best.values()]))
    clean_std = float(np.median([r.mos_std for r in best.values()]))
    assert batch[5][10] == 0 and batch[2][10].item() == pytest.approx(clean_mos, abs=1e-5)
    expected = label_distributions([replace(records[0], mos=clean_mos, mos_std=clean_std)], both.labels, both.vote_std)
    assert torch.allclose(batch[1][10], torch.from_numpy(expected[0]).to(batch[1].dtype), atol=1e-6)
    assert torch.isnan(batch[2][11:]).all() and not batch[1][11:].any()
    missing = TrainConfig(data=str(tiny_refs), num_workers=0, ladder_photos=str(ladder_photos / "none"))
    with pytest.raises(DatasetError, match="none: ladder photo folder not found"):
        make_loader(records, missing, train_mode=True)

"""``pynima search``: random search of the head and backbone learning rates with Optuna, on validation data only.

The reference implementation's ``random_search.py`` picked its learning rates on a validation set that overlapped its
test set. Here each trial trains on the train part of one fixed split and is scored by its best validation EMD; the
test part is never loaded (``train(..., test=False)``). Both rates are sampled log-uniformly over the given ranges,
at random (default) or by TPE. Trials live in an Optuna storage (a SQLite file), so an interrupted search resumes:
rerunning the command runs only the trials still missing (a trial cut off mid-way is marked failed and replaced).

Writes to ``OUT``: ``split.json`` (the split every trial uses), ``study.db``, ``trial_NNN/`` (logs and loss curves;
checkpoints are deleted), ``search.json`` (the trial table), ``landscape.png`` and ``best_config.json``, which
``pynima train --config OUT/best_config.json`` takes for the final run on the same split, evaluated on its test part.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, fields, replace
from pathlib import Path

from pynima.errors import NonFiniteError, PynimaError
from pynima.files import read_csv, write_json

__all__ = ["DEFAULT_LR_BASE", "DEFAULT_LR_HEAD", "SAMPLERS", "format_trials", "landscape", "run_search"]

log = logging.getLogger(__name__)

DEFAULT_LR_HEAD = (1e-6, 1e-2)
DEFAULT_LR_BASE = (1e-7, 1e-3)
SAMPLERS = ("random", "tpe")


def _best_val(metrics_csv: Path) -> tuple[float, float | None]:
    """(best validation EMD, validation SRCC at that epoch) from Lightning's CSV log."""
    best: tuple[float, float | None] = (float("inf"), None)
    for row in read_csv(metrics_csv):
        if row.get("val_emd") and float(row["val_emd"]) < best[0]:
            best = (float(row["val_emd"]), float(row["val_srcc"]) if row.get("val_srcc") else None)
    return best


def landscape(trials: list[dict], path: Path, ranges: dict[str, tuple[float, float]]) -> None:
    """Validation EMD over the (head, backbone) learning-rate plane, log axes; the best trial is circled."""
    from pynima.evaluation.plots import pyplot, save_figure

    plt = pyplot()
    done = [t for t in trials if t["val_emd"] is not None]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    if done:
        sc = ax.scatter(
            [t["lr_head"] for t in done],
            [t["lr_base"] for t in done],
            c=[t["val_emd"] for t in done],
            cmap="viridis_r",
            s=40,
            edgecolors="k",
            linewidths=0.3,
        )
        fig.colorbar(sc, ax=ax, label="best validation EMD (lower is better)")
        best = min(done, key=lambda t: t["val_emd"])
        ax.scatter(
            [best["lr_head"]],
            [best["lr_base"]],
            s=200,
            facecolors="none",
            edgecolors="r",
            linewidths=1.5,
            label=f"best (trial {best['number']})",
        )
        ax.legend(loc="best", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(*ranges["lr_head"])
    ax.set_ylim(*ranges["lr_base"])
    ax.set_xlabel("head learning rate")
    ax.set_ylabel("backbone learning rate")
    ax.set_title(f"learning-rate search, {len(done)} trials")
    save_figure(fig, path)


def _check_ranges(cfg, sampler: str, lr_head_range, lr_base_range) -> dict[str, tuple[float, float]]:
    """The search's learning-rate ranges, after checking them, the sampler and the one-process setting."""
    if sampler not in SAMPLERS:
        raise PynimaError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if cfg.devices != 1 or cfg.num_nodes != 1:
        # the trials' decisions (Optuna's storage, the pruned runs) are one process's; short trials gain little
        raise PynimaError(
            f"pynima search trains each trial in one process (devices 1, one node), got devices "
            f"{cfg.devices!r} on {cfg.num_nodes} node(s); train the best configuration distributed"
        )
    ranges = {"lr_head": tuple(map(float, lr_head_range)), "lr_base": tuple(map(float, lr_base_range))}
    for name, (lo, hi) in ranges.items():
        if not 0 < lo < hi:
            raise PynimaError(f"--{name.replace('_', '-')}-range needs 0 < LOW < HIGH, got {lo:g} {hi:g}")
    return ranges


def _open_study(storage: Path, study_name: str, sampler: str, seed: int, identity: dict):
    """The Optuna study in ``storage``: new, or resumed when it was run with the same configuration (refused
    otherwise); trials an interruption cut off count as failed, and new trials replace them.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is our one line, not its traceback
    sampler_obj = (
        optuna.samplers.RandomSampler(seed=seed) if sampler == "random" else optuna.samplers.TPESampler(seed=seed)
    )
    study = optuna.create_study(
        study_name=study_name,
        storage=f"sqlite:///{storage.resolve()}",
        direction="minimize",
        sampler=sampler_obj,
        load_if_exists=True,
    )
    saved = study.user_attrs.get("config")
    if saved is None:
        study.set_user_attr("config", identity)
    elif saved != identity:
        changed = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
        raise PynimaError(
            f"{storage}: study {study_name!r} was run with another configuration (differs in "
            f"{', '.join(changed)}); use another --out, --storage or --study"
        )
    for t in study.trials:
        if t.state == optuna.trial.TrialState.RUNNING:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    return study


def _objective(base, out: Path, ranges: dict, progress: bool):
    """One trial: a short run at the learning rates Optuna suggests, its best validation EMD (checkpoints deleted)."""
    import optuna

    from pynima.training.train import train

    def objective(trial: optuna.Trial) -> float:
        lr_head = trial.suggest_float("lr_head", *ranges["lr_head"], log=True)
        lr_base = trial.suggest_float("lr_base", *ranges["lr_base"], log=True)
        d = out / f"trial_{trial.number:03d}"
        if d.exists():
            shutil.rmtree(d)
        try:
            train(replace(base, out=str(d), lr_head=lr_head, lr_base=lr_base), progress=progress, test=False)
        except NonFiniteError as e:
            log.warning("trial %3d: lr_head %.3g  lr_base %.3g  failed: %s", trial.number, lr_head, lr_base, e)
            trial.set_user_attr("error", str(e))
            raise
        val_emd, val_srcc = _best_val(d / "metrics.csv")
        info = json.loads((d / "train.json").read_text())
        trial.set_user_attr("val_srcc", val_srcc)
        trial.set_user_attr("epochs", info["epochs"])
        trial.set_user_attr("seconds", info["seconds"])
        for ckpt in d.glob("*.ckpt"):
            ckpt.unlink()
        srcc = "n/a" if val_srcc is None else f"{val_srcc:.4f}"
        log.info(
            "trial %3d: lr_head %.3g  lr_base %.3g  val EMD %.4f  val SRCC %s  (%.0f s)",
            *(trial.number, lr_head, lr_base, val_emd, srcc, info["seconds"]),
        )
        return val_emd

    return objective


def _trial_rows(study) -> list[dict]:
    """One row per trial, as search.json and the landscape plot hold them."""
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "lr_head": t.params.get("lr_head"),
            "lr_base": t.params.get("lr_base"),
            "val_emd": t.value,
            "val_srcc": t.user_attrs.get("val_srcc"),
            "epochs": t.user_attrs.get("epochs"),
            "seconds": t.user_attrs.get("seconds"),
            "error": t.user_attrs.get("error"),
        }
        for t in study.trials
    ]


def _write_best_config(base, best, out: Path, trials: int, sampler: str, export_onnx: bool) -> None:
    """best_config.json: the best trial's learning rates with the default epochs, for the final run on the same
    split.
    """
    from pynima.config import TrainConfig

    default_epochs = next(f.default for f in fields(TrainConfig) if f.name == "epochs")
    best_cfg = asdict(
        replace(
            base,
            out=str(out / "best"),
            lr_head=best.params["lr_head"],
            lr_base=best.params["lr_base"],
            epochs=default_epochs,
            export_onnx=export_onnx,
        )
    )
    best_cfg = best_cfg | {
        "ratios": list(base.ratios),
        "trial": best.number,
        "best_val_emd": best.value,
        "about": f"best of {trials} trials ({sampler} search, {base.epochs} epochs each, validation "
        f"EMD); epochs reset to the default for the final run on the same split",
    }
    write_json(out / "best_config.json", best_cfg)


def run_search(
    cfg,
    trials: int = 20,
    sampler: str = "random",
    lr_head_range: tuple[float, float] = DEFAULT_LR_HEAD,
    lr_base_range: tuple[float, float] = DEFAULT_LR_BASE,
    storage: str | Path | None = None,
    study_name: str = "pynima",
    progress: bool = False,
) -> dict:
    """Run (or resume) a learning-rate search until ``trials`` trials have completed.

    Args:
        cfg: the ``TrainConfig`` every trial uses: its ``epochs`` is the short per-trial budget, its ``out`` the
            search folder; its learning rates are ignored.
        trials: completed trials to reach (a resumed search runs only the missing ones).
        sampler: "random" or "tpe" (Optuna's samplers, seeded with ``cfg.seed``).
        lr_head_range: the head's learning-rate range, searched in log space.
        lr_base_range: the backbone's learning-rate range, searched in log space.
        storage: the Optuna SQLite file (default ``OUT/study.db``).
        study_name: the study's name in ``storage``.
        progress: show each trial's progress bar.

    Returns:
        What search.json holds: the trials, the best one, the configuration.
    """
    import optuna

    from pynima.datasets.registry import read_config_dataset
    from pynima.datasets.splits import dataset_split

    ranges = _check_ranges(cfg, sampler, lr_head_range, lr_base_range)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    split_file = Path(cfg.split_file) if cfg.split_file else out / "split.json"
    if not cfg.split_file and not split_file.is_file():
        dataset = read_config_dataset(cfg)
        write_json(split_file, dataset_split(dataset, cfg.split, cfg.ratios, cfg.seed), indent=1)
    base = replace(cfg, split_file=str(split_file), lr_head=None, lr_base=None, export_onnx=False)
    identity = {k: v for k, v in asdict(base).items() if k not in ("out", "num_workers", "export_onnx")} | {
        "ratios": list(base.ratios),
        "sampler": sampler,
        "ranges": {k: list(v) for k, v in ranges.items()},
    }
    storage = Path(storage) if storage else out / "study.db"
    study = _open_study(storage, study_name, sampler, cfg.seed, identity)
    complete = optuna.trial.TrialState.COMPLETE
    remaining = trials - sum(t.state == complete for t in study.trials)
    log.info(
        "study %r in %s: %d trials done, %d to run", study_name, storage, trials - max(remaining, 0), max(remaining, 0)
    )
    if remaining > 0:
        # a diverged trial (NaN loss) fails, logged, and the search goes on: it is a learning rate not to pick
        study.optimize(_objective(base, out, ranges, progress), n_trials=remaining, catch=(NonFiniteError,))
    rows = _trial_rows(study)
    if not any(t.state == complete for t in study.trials):
        raise PynimaError(
            f"{out}: no trial finished ({len(study.trials)} failed: diverged or interrupted); narrow "
            f"--lr-head-range and --lr-base-range"
        )
    best = study.best_trial
    _write_best_config(base, best, out, trials, sampler, cfg.export_onnx)
    landscape(rows, out / "landscape.png", ranges)
    result = {
        "study": study_name,
        "storage": str(storage),
        "sampler": sampler,
        "ranges": {k: list(v) for k, v in ranges.items()},
        "trial_epochs": base.epochs,
        "split_file": str(split_file),
        "trials": rows,
        "best": {"number": best.number, "val_emd": best.value, **best.params},
        "config": identity,
    }
    write_json(out / "search.json", result)
    return result


def format_trials(result: dict) -> str:
    """A search's trials as a text table, best validation EMD first."""
    lines = [f"{'trial':>5s} {'state':>8s} {'lr_head':>9s} {'lr_base':>9s} {'val EMD':>8s} {'val SRCC':>8s}"]
    for t in sorted(result["trials"], key=lambda t: (t["val_emd"] is None, t["val_emd"] or 0)):
        emd = "" if t["val_emd"] is None else f"{t['val_emd']:.4f}"
        srcc = "" if t["val_srcc"] is None else f"{t['val_srcc']:.4f}"
        lr = [("" if t[k] is None else f"{t[k]:.3g}") for k in ("lr_head", "lr_base")]
        lines.append(f"{t['number']:5d} {t['state']:>8s} {lr[0]:>9s} {lr[1]:>9s} {emd:>8s} {srcc:>8s}")
    return "\n".join(lines)

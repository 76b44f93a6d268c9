"""The paper's tables for any labelled set: numbers with 95% bootstrap intervals, plots, and
a gallery of the worst errors.

Detection is per exam (Table 2: full and balanced sets, by class and by size stratum; a
class's rows hold its exams and the bleed-free ones; "balanced" re-weights to 50% prevalence);
segmentation is Dice per class over exams with that class; volume agreement per class; ABC/2
of the true IPH masks against their true volume (the bedside method's own bias).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ich.evaluate.metrics import (
    Interval,
    balanced_detection,
    bootstrap,
    confusion,
    detection,
    pearson_r,
    roc_curve,
    volume_agreement,
)
from ich.evaluate.runner import ExamOutcome
from ich.quantify.strata import stratum_of
from ich.schema import HemorrhageClass, OperatingPoint, SizeStratum

PAPER = {
    "detection": {"accuracy": 0.975, "auc": 0.983, "sensitivity": 0.971, "specificity": 0.975,
                  "ppv": 0.793, "npv": 0.997},
    "balanced": {"accuracy": 0.984, "auc": 0.991, "sensitivity": 0.971, "specificity": 0.975,
                 "ppv": 0.975, "npv": 0.971},
    "dice": {"IPH": 0.931, "EDH/SDH": 0.863, "SAH": 0.772},
    "pearson_r": {"IPH": 0.999, "EDH/SDH": 0.987, "SAH": 0.953},
    "bias_percent": {"CNN IPH": -2.1, "ABC/2": 20.2},
}  # fmt: skip
"""Chang et al. 2018, cross-validation cohort (Table 2 and Results)."""

METRICS = ("accuracy", "auc", "sensitivity", "specificity", "ppv", "npv")
ANY = "any ICH"


def _rows(outcomes: list[ExamOutcome], which: HemorrhageClass | None) -> list[ExamOutcome]:
    """The exams of a class's row: those with the class, and those with no bleed at all (an
    exam with only another class is neither a case nor a control for this one)."""
    if which is None:
        return outcomes
    return [o for o in outcomes if o.positive(which) or not o.positive()]


def _columns(
    outcomes: list[ExamOutcome], which: HemorrhageClass | None
) -> tuple[np.ndarray, np.ndarray]:
    rows = _rows(outcomes, which)
    truth = np.array([o.positive(which) for o in rows], dtype=bool)
    scores = np.array(
        [o.any_probability if which is None else o.probability[which] for o in rows], dtype=float
    )
    return truth, scores


def _detection(
    truth: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    resamples: int,
    figures: Callable[[np.ndarray, np.ndarray, float], dict[str, float]] = detection,
) -> dict[str, Interval]:
    return {
        m: bootstrap(lambda t, s, m=m: figures(t, s, threshold)[m], truth, scores,
                     resamples=resamples, strata=truth)
        for m in METRICS
    }  # fmt: skip


def _targets(point: OperatingPoint) -> list[tuple[str, HemorrhageClass | None, float]]:
    """(row name, class or None for any ICH, threshold) of every detection row."""
    return [
        (ANY, None, point.any_ich),
        *((c.value, c, point.thresholds[c]) for c in HemorrhageClass),
    ]


def summarise(
    outcomes: list[ExamOutcome], point: OperatingPoint, resamples: int = 1000
) -> dict[str, Any]:
    """Every figure of the report, as nested dicts of :class:`Interval`."""
    full, balanced, strata = {}, {}, {}
    for name, which, threshold in _targets(point):
        truth, scores = _columns(outcomes, which)
        full[name] = _detection(truth, scores, threshold, resamples)
        balanced[name] = _detection(truth, scores, threshold, resamples, balanced_detection)
        strata[name] = {}
        rows = _rows(outcomes, which)
        for stratum in SizeStratum:
            keep = np.array(
                [not o.positive(which) or _stratum(o, which) == stratum.value for o in rows],
                dtype=bool,
            )
            if (truth & keep).any():
                strata[name][stratum.value] = _detection(
                    truth[keep], scores[keep], threshold, resamples, balanced_detection
                )
    segmentation, volume = {}, {}
    for c in HemorrhageClass:
        positives = [o for o in outcomes if o.positive(c)]
        dices = np.array([o.dice[c] for o in positives])
        segmentation[c.value] = bootstrap(np.nanmean, dices, resamples=resamples)
        predicted = np.array([o.predicted_volume_ml[c] for o in positives])
        true = np.array([o.truth_volume_ml[c] for o in positives])
        volume[c.value] = {
            key: bootstrap(lambda p, t, key=key: volume_agreement(p, t)[key], predicted, true,
                           resamples=resamples)
            for key in ("pearson_r", "bias_percent", "pooled_bias_percent",
                        "bland_altman_mean_ml", "bland_altman_low_ml", "bland_altman_high_ml")
        }  # fmt: skip
    triples = np.array([t for o in outcomes for t in o.iph_abc2]).reshape(-1, 3)
    sick = [o for o in outcomes if o.positive()]
    blood = np.array([o.blood_voxels for o in sick], dtype=float).reshape(-1, 3)
    predicted_ml = np.array([sum(o.predicted_volume_ml.values()) for o in sick])
    true_ml = np.array([o.true_blood_ml for o in sick])
    all_blood = {
        "dice_mean": bootstrap(np.nanmean, np.array([o.dice_all for o in sick]),
                               resamples=resamples),
        "dice_pooled": bootstrap(lambda b: float(2 * b[:, 0].sum() / b[:, 1:].sum()), blood,
                                 resamples=resamples),
        "pearson_r": bootstrap(pearson_r, predicted_ml, true_ml, resamples=resamples),
        "pooled_bias_percent": bootstrap(
            lambda p, t: volume_agreement(p, t)["pooled_bias_percent"], predicted_ml, true_ml,
            resamples=resamples,
        ),
        "unclassified_ml": float(sum(o.unclassified_ml for o in outcomes)),
    }  # fmt: skip
    abc2 = {}
    for column, method in ((1, "kothari"), (2, "extent")):
        true, estimate = triples[:, 0], triples[:, column]
        abc2[method] = {
            "bias_percent": bootstrap(
                lambda t, e: float(100 * np.mean((e - t) / t)), true, estimate,
                resamples=resamples,
            ),
            "pearson_r": bootstrap(pearson_r, true, estimate, resamples=resamples),
        }  # fmt: skip
    return {
        "exams": len(outcomes),
        "positive_exams": int(sum(o.positive() for o in outcomes)),
        "operating_point": point.model_dump(mode="json"),
        "detection_full": full,
        "detection_balanced": balanced,
        "detection_balanced_by_stratum": strata,
        "dice": segmentation,
        "volume": volume,
        "all_blood": all_blood,
        "abc2_of_true_iph": abc2,
    }


def _stratum(o: ExamOutcome, which: HemorrhageClass | None) -> str | None:
    if which is not None:
        return o.truth_stratum[which]
    total = sum(o.truth_volume_ml.values())
    return stratum_of(total).value if total > 0 else None


def _cell(i: Interval, digits: int = 3) -> str:
    if math.isnan(i.value):
        return "-"
    if math.isnan(i.low):
        return f"{i.value:.{digits}f}"
    return f"{i.value:.{digits}f} ({i.low:.{digits}f}-{i.high:.{digits}f})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Interval):
        return [None if math.isnan(v) else v for v in (value.value, value.low, value.high)]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _markdown(summary: dict[str, Any], title: str, notes: Sequence[str] = ()) -> str:
    lines = [f"# {title}", "", f"{summary['exams']} exams, {summary['positive_exams']} with "
             "hemorrhage. 95% bootstrap intervals in brackets.", ""]  # fmt: skip
    for note in notes:
        lines += [note, ""]
    headings = (
        ("detection_full", "Exam detection, full set"),
        ("detection_balanced", "Exam detection, balanced set (Table 2)"),
    )
    for key, heading in headings:
        lines += [f"## {heading}", "", "| | " + " | ".join(METRICS) + " |",
                  "|---" * (len(METRICS) + 1) + "|"]  # fmt: skip
        for name, figures in summary[key].items():
            lines.append(f"| {name} | " + " | ".join(_cell(figures[m]) for m in METRICS) + " |")
        paper = PAPER["balanced" if key == "detection_balanced" else "detection"]
        lines += ["| paper, any ICH | " + " | ".join(f"{paper[m]:.3f}" for m in METRICS) + " |", ""]
        if key == "detection_balanced":
            lines += [
                "Balanced: negatives re-weighted to 50% prevalence (specificity and AUC as in the "
                "full set). The paper's balanced accuracy (0.984) and AUC (0.991) do not follow "
                "from its sensitivity and specificity that way; compare them with care.",
                "",
            ]
    lines += ["## Balanced detection by size stratum (accuracy, sensitivity)", "",
              "| | " + " | ".join(s.value for s in SizeStratum) + " |",
              "|---" * (len(SizeStratum) + 1) + "|"]  # fmt: skip
    for name, by_stratum in summary["detection_balanced_by_stratum"].items():
        cells = []
        for s in SizeStratum:
            f = by_stratum.get(s.value)
            cells.append("-" if f is None else f"{_cell(f['accuracy'])}, {_cell(f['sensitivity'])}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Segmentation and volume", "",
              "| class | Dice | paper | Pearson r | paper | bias % | Bland-Altman mL |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in HemorrhageClass:
        v = summary["volume"][c.value]
        low, high = v["bland_altman_low_ml"].value, v["bland_altman_high_ml"].value
        limits = f"{v['bland_altman_mean_ml'].value:.2f} [{low:.2f}, {high:.2f}]"
        lines.append(
            f"| {c.value} | {_cell(summary['dice'][c.value])} | {PAPER['dice'][c.value]} | "
            f"{_cell(v['pearson_r'])} | {PAPER['pearson_r'][c.value]} | "
            f"{_cell(v['bias_percent'], 1)} | {limits} |"
        )
    every = summary["all_blood"]
    lines += ["", f"All blood, every class together (and {every['unclassified_ml']:.1f} mL of "
              "true blood no class names, such as intraventricular): Dice per exam with blood "
              f"{_cell(every['dice_mean'])}, pooled over them {_cell(every['dice_pooled'])}; "
              f"total volume r {_cell(every['pearson_r'])}, pooled bias "
              f"{_cell(every['pooled_bias_percent'], 1)} %."]  # fmt: skip
    kothari, extent = summary["abc2_of_true_iph"]["kothari"], summary["abc2_of_true_iph"]["extent"]
    lines += ["", "ABC/2 of the true IPH masks against their volume: with Kothari's slice "
              f"weighting bias {_cell(kothari['bias_percent'], 1)} %, r "
              f"{_cell(kothari['pearson_r'])}; with C the full extent bias "
              f"{_cell(extent['bias_percent'], 1)} %, r {_cell(extent['pearson_r'])} "
              f"(paper: +{PAPER['bias_percent']['ABC/2']} %; the CNN "
              f"{PAPER['bias_percent']['CNN IPH']} %).", ""]  # fmt: skip
    lines += ["![ROC](roc.png)", "", "![volumes](volumes.png)", "", "![errors](gallery.png)", ""]
    return "\n".join(lines)


def _confusion(outcomes: list[ExamOutcome], point: OperatingPoint) -> str:
    truth, scores = _columns(outcomes, None)
    tp, fp, tn, fn = confusion(truth, scores >= point.any_ich)
    return (
        "## Confusion, any ICH\n\n| | flagged | not flagged |\n|---|---|---|\n"
        f"| hemorrhage | {tp} | {fn} |\n| no hemorrhage | {fp} | {tn} |\n"
    )


def _plots(outcomes: list[ExamOutcome], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for which in (None, *HemorrhageClass):
        truth, scores = _columns(outcomes, which)
        if truth.any() and (~truth).any():
            fpr, tpr, _ = roc_curve(truth, scores)
            ax.plot(fpr, tpr, label=ANY if which is None else which.value)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC per class")
    if ax.get_legend_handles_labels()[0]:  # no curve when no row has exams of both kinds
        ax.legend(loc="lower right")
    fig.savefig(out / "roc.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    fig, axes = plt.subplots(2, 3, figsize=(12, 7))
    for column, c in enumerate(HemorrhageClass):
        positives = [o for o in outcomes if o.positive(c)]
        true = np.array([o.truth_volume_ml[c] for o in positives])
        predicted = np.array([o.predicted_volume_ml[c] for o in positives])
        top = axes[0, column]
        top.scatter(true, predicted, s=12)
        limit = max([1.0, *true, *predicted])
        top.plot([0, limit], [0, limit], "k:", lw=0.8)
        top.set(title=f"{c.value} volume", xlabel="true mL", ylabel="predicted mL")
        bottom = axes[1, column]
        mean, difference = (true + predicted) / 2, predicted - true
        bottom.scatter(mean, difference, s=12)
        if len(difference) > 1:
            centre, spread = difference.mean(), 1.96 * difference.std(ddof=1)
            for level in (centre, centre - spread, centre + spread):
                bottom.axhline(level, color="k", ls=":", lw=0.8)
        bottom.set(title="Bland-Altman", xlabel="mean mL", ylabel="predicted - true mL")
    fig.tight_layout()
    fig.savefig(out / "volumes.png", dpi=110)
    plt.close(fig)


def _gallery(outcomes: list[ExamOutcome], point: OperatingPoint, out: Path, count: int = 4) -> None:
    """The negatives scored highest and the positives scored lowest (the false positives and
    false negatives first), true blood outlined in green and predicted blood in red."""
    from PIL import Image, ImageDraw

    negatives = sorted((o for o in outcomes if not o.positive()), key=lambda o: -o.any_probability)
    positives = sorted((o for o in outcomes if o.positive()), key=lambda o: o.any_probability)
    flagged = point.any_ich
    chosen = [("FP" if o.any_probability >= flagged else "TN", o) for o in negatives[:count]]
    chosen += [("FN" if o.any_probability < flagged else "TP", o) for o in positives[:count]]
    tiles = []
    for kind, o in chosen:
        if o.key_slice is None:
            continue
        grey, truth, predicted = o.key_slice
        rgb = np.stack([grey] * 3, axis=-1)
        for mask, colour in ((truth, (0, 220, 0)), (predicted, (230, 0, 0))):
            edge = mask.astype(bool) & ~_eroded(mask.astype(bool))
            rgb[edge] = colour
        tile = Image.fromarray(rgb).resize((256, 256))
        ImageDraw.Draw(tile).text((4, 4), f"{kind} p={o.any_probability:.2f} {o.name}",
                                  fill=(255, 255, 0))  # fmt: skip
        tiles.append(np.asarray(tile))
    if tiles:
        rows = [np.concatenate(tiles[i : i + 4], axis=1) for i in range(0, len(tiles), 4)]
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
        Image.fromarray(np.concatenate(rows, axis=0)).save(out / "gallery.png")


def _eroded(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return inner


def write_report(
    outcomes: list[ExamOutcome],
    point: OperatingPoint,
    out: Path,
    title: str = "Evaluation",
    resamples: int = 1000,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Write report.md, metrics.json, roc.png, volumes.png and gallery.png into ``out``;
    ``notes`` are paragraphs under the title (how the predictions were made, the data)."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(outcomes, point, resamples=resamples)
    (out / "metrics.json").write_text(json.dumps(_jsonable(summary), indent=2) + "\n")
    text = _markdown(summary, title, notes) + "\n" + _confusion(outcomes, point)
    (out / "report.md").write_text(text)
    _plots(outcomes, out)
    _gallery(outcomes, point, out)
    return summary

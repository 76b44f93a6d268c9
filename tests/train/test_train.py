"""Training end to end on tiny settings: cache, balanced sampling, targets, the loop with its
checkpoints and resume, cross-validation, data-parallel processes, and `ich analyze`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ctich_source import small_source  # type: ignore[import-not-found]
from typer.testing import CliRunner

from ich.cli import app
from ich.datasets.ctich import import_ctich
from ich.evaluate.operating import threshold_at_specificity
from ich.model.analyzer import Analyzer
from ich.model.checkpoint import load_model
from ich.schema import ExamResult, OperatingPoint
from ich.train.cache import CachedCase, TrainingDataError, cache_cases, list_cases
from ich.train.config import TrainConfig, TrainConfigError, load_config
from ich.train.dataset import PlaneStacks, targets
from ich.train.folds import cross_validate, fold_of
from ich.train.loop import TrainingError, train
from ich.train.sampling import BalancedSampler

TINY = Path(__file__).parents[2] / "ich" / "train" / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny(small_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainConfig:
    cache = tmp_path_factory.mktemp("cache")
    config = load_config(TINY)
    return config.model_copy(
        update={"data": (small_synth,), "validation": small_synth, "cache": cache}
    )


@pytest.fixture(scope="module")
def trained(tiny: TrainConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tiny, tmp_path_factory.mktemp("run"))


def test_cache_holds_every_case_on_the_model_grid(tiny: TrainConfig) -> None:
    cases = cache_cases(list_cases(tiny.data[0]), tiny.model.input, tiny.cache)
    assert len(cases) == 4
    assert all(c.hu().shape[1:] == (64, 64) and c.hu().dtype == np.int16 for c in cases)
    assert sum(c.positive for c in cases) >= 2
    with pytest.raises(TrainingDataError, match="ich synth"):
        list_cases(tiny.cache)


def test_sampler_balances_blood_and_no_blood(tiny: TrainConfig) -> None:
    cases = cache_cases(list_cases(tiny.data[0]), tiny.model.input, tiny.cache)
    sampler = BalancedSampler(cases, 0.3, seed=1)
    drawn = [sampler.draw() for _ in range(600)]
    blood = np.mean([cases[c].areas[p].sum() > 0 for c, p in drawn])
    assert blood == pytest.approx(0.7, abs=0.06)
    again = BalancedSampler(cases, 0.3, seed=1)
    assert [again.draw() for _ in range(50)] == drawn[:50]
    stacks = PlaneStacks(cases, tiny.model.input, augmented=True, seed=0)
    image, _ = stacks[drawn[0]]
    assert image.shape == (15, 64, 64) and 0 <= float(image.min()) <= float(image.max()) <= 1


def test_sampler_draws_real_scans_at_their_share_and_never_unclassified_blood() -> None:
    def case(real: bool, blood: list[int], unnamed: list[int]) -> CachedCase:
        areas = np.zeros((len(blood), 3), dtype=np.int64)
        areas[:, 0] = blood
        return CachedCase(Path(), "c", areas, np.array(unnamed), real=real)

    cases = [
        case(False, [0, 0, 50, 0] * 25, [0] * 100),  # synthetic: many planes
        case(True, [0, 30, 0, 0], [0, 0, 0, 0]),
        case(True, [0, 60, 60, 0], [0, 0, 9, 9]),  # planes 2 and 3 hold unnamed blood
    ]
    sampler = BalancedSampler(cases, 0.5, seed=3, real_fraction=0.7)
    drawn = [sampler.draw() for _ in range(2000)]
    assert np.mean([cases[c].real for c, _ in drawn]) == pytest.approx(0.7, abs=0.04)
    assert (2, 2) not in drawn and (2, 3) not in drawn
    assert {(1, 1), (2, 1), (1, 0), (2, 0)} <= set(drawn)


def test_sampler_draws_hard_negatives_from_the_bone_rich_planes(tmp_path: Path) -> None:
    # Eight blood-free planes of a head; planes 0 and 7 (skull base, vertex) are mostly bone.
    hu = np.full((8, 16, 16), 30, dtype=np.int16)
    hu[:, :2] = 1000
    hu[[0, 7], :12] = 1000
    np.save(tmp_path / "hu.npy", hu)
    areas = np.zeros((8, 3), dtype=np.int64)
    areas[3, 0] = 50
    cases = [CachedCase(tmp_path, "c", areas, np.zeros(8, dtype=np.int64))]
    plain = BalancedSampler(cases, 1.0 - 1e-9, seed=2)
    hard = BalancedSampler(cases, 1.0 - 1e-9, seed=2, hard_fraction=0.8)
    share = [
        np.mean([p in (0, 7) for _, p in (s.draw() for _ in range(2000))]) for s in (plain, hard)
    ]
    assert share[0] == pytest.approx(2 / 7, abs=0.04)
    assert share[1] == pytest.approx(0.8 + 0.2 * 2 / 7, abs=0.04)


def test_sampler_draws_hard_negatives_from_the_planes_given_as_hardest(tmp_path: Path) -> None:
    areas = np.zeros((8, 3), dtype=np.int64)
    areas[3, 0] = 50
    cases = [CachedCase(tmp_path, "c", areas, np.zeros(8, dtype=np.int64))]
    mined = np.array([0.1, 0.2, 0.9, 0.7, 0.1, 0.8, 0.0, 0.3])  # plane 3 holds blood
    hard = BalancedSampler(cases, 1.0 - 1e-9, seed=2, hard_fraction=0.8, hardness=mined)
    share = np.mean([p in (2, 5) for _, p in (hard.draw() for _ in range(2000))])
    assert share == pytest.approx(0.8 + 0.2 * 2 / 7, abs=0.04)
    with pytest.raises(ValueError, match="hardness of 7 planes for 8"):
        BalancedSampler(cases, 0.5, seed=2, hard_fraction=0.8, hardness=mined[:7])


def test_mining_scores_the_planes_as_analysis_of_the_study_does(
    tiny: TrainConfig, trained: Path, small_synth: Path
) -> None:
    from ich.dicom.ingest import load
    from ich.pipeline import prepare
    from ich.train.mining import detection_scores

    network, config, _, _ = load_model(trained)
    dirs = list_cases(small_synth)[:2]
    cases = cache_cases(dirs, config.input, tiny.cache)
    mined = detection_scores(network, config, cases)
    assert mined.shape == (sum(len(c.areas) for c in cases),) and network.training
    analyzer = Analyzer(trained, compiled=False)
    found = [analyzer.detect(prepare(load(d / "dicom"), config.input).series) for d in dirs]
    expected = np.concatenate([f.scores.max(axis=1, initial=0.0) for f in found])
    np.testing.assert_allclose(mined, expected, atol=0.02)
    assert mined.max() > 0


def test_targets_are_one_object_per_region_of_each_class() -> None:
    label = np.zeros((32, 32), dtype=np.uint8)
    label[2:5, 3:9] = 1
    label[20:22, 20:21] = 1
    label[10:12, 10:30] = 3
    found = targets(label)
    assert found["labels"].tolist() == [1, 1, 3]
    assert found["boxes"].tolist()[0] == [2.5, 1.5, 8.5, 4.5]
    assert found["masks"].shape == (3, 32, 32) and int(found["masks"][2].sum()) == 40
    assert targets(np.zeros((8, 8), np.uint8))["boxes"].shape == (0, 4)


def test_training_logs_checkpoints_and_resumes(
    tiny: TrainConfig, trained: Path, tmp_path: Path
) -> None:
    run = trained.parent
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and "train" in kinds and "validation" in kinds
    assert kinds[-1] == "end" and events[-1]["step"] == 4
    assert {"last.pt", "best.pt", "model.pt"} <= {p.name for p in run.iterdir()}
    # A resumed run starts where the checkpoint left off.
    shutil.copytree(run, tmp_path / "run")
    longer = tiny.model_copy(update={"steps": 6})
    train(longer, tmp_path / "run", resume=True)
    events = [
        json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    ]
    starts = [e for e in events if e["event"] == "start"]
    assert starts[-1]["resumed"] and starts[-1]["step"] == 4
    assert events[-1] == {"event": "end", "step": 6, "replicas_in_sync": True}


def test_the_trained_model_analyses_a_study_end_to_end(trained: Path, small_synth: Path) -> None:
    from ich.dicom import load

    analyzer = Analyzer(trained)
    assert analyzer.operating_point.source.startswith("most sensitive")
    volume = load(small_synth / "case_00000" / "dicom")
    result, label = analyzer(volume, label_volume=True)
    assert label.shape == volume.shape
    assert ExamResult.model_validate_json(result.model_dump_json()) == result
    runner = CliRunner()
    out = runner.invoke(app, ["analyze", str(small_synth / "case_00000" / "dicom"), "--json",
                              "--model", str(trained)])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert ExamResult.model_validate_json(out.stdout).study_uid == volume.study_uid


def test_folds_never_split_a_patient_and_share_the_positives() -> None:
    patients = [f"p{i // 3}" for i in range(30)]  # ten patients of three studies each
    positive = [i < 12 for i in range(30)]  # four patients with blood
    assignment = fold_of(patients, positive, 3, seed=0)
    for patient in set(patients):
        assert len({f for p, f in zip(patients, assignment, strict=True) if p == patient}) == 1
    per_fold = [{p for p, f in zip(patients, assignment, strict=True) if f == k} for k in range(3)]
    assert sorted(len(p) for p in per_fold) == [3, 3, 4]
    sick = [len({p for p in fold if p in {"p0", "p1", "p2", "p3"}}) for fold in per_fold]
    assert sorted(sick) == [1, 1, 2]
    assert (fold_of(patients, positive, 3, seed=0) == assignment).all()
    with pytest.raises(TrainingError, match="10 patients cannot make 11 folds"):
        fold_of(patients, positive, 11, seed=0)


def test_cross_validation_folds_real_patients_and_reports_out_of_fold(
    tiny: TrainConfig, tmp_path: Path
) -> None:
    real = tmp_path / "real"
    import_ctich(small_source(tmp_path / "source", patients=4), real)
    quick = tiny.model_copy(update={"steps": 2, "validation": None, "real_fraction": 0.5})
    path = cross_validate(quick, tmp_path / "cv", folds=2, fold_data=[real])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    # Only the real patients are held out, each once; the synthetic studies train every fold.
    assert sorted(Path(line["case"]).name for line in lines) == [
        "case_049", "case_050", "case_051", "case_052"
    ]  # fmt: skip
    folds = json.loads((tmp_path / "cv" / "folds.json").read_text())["cases"]
    assert sorted(c["fold"] for c in folds) == [0, 0, 1, 1]
    assert all(line["result"]["label_volume"] for line in lines)
    chosen = tmp_path / "cv" / "operating_point.json"
    point = OperatingPoint.model_validate_json(chosen.read_text())
    assert "cross-validation" in point.source
    assert (tmp_path / "cv" / "report" / "report.md").is_file()
    # The shipped model takes that operating point.
    final = tiny.model_copy(update={"steps": 2, "validation": None, "operating_point": chosen})
    studies = list_cases(real) + list_cases(tiny.data[0])
    model = train(final, tmp_path / "final", case_dirs=studies)
    assert Analyzer(model).operating_point == point


def test_a_fold_never_trains_on_synthetic_studies_made_on_its_patients_heads(
    tiny: TrainConfig, trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real"
    import_ctich(small_source(tmp_path / "source", patients=4), real)
    synthetic = tmp_path / "synthetic"
    cases = []
    for n, patient in enumerate(("ct-ich:049", "ct-ich:050", None)):
        case = synthetic / f"case_{n:05d}"
        (case / "truth").mkdir(parents=True)
        head = {"source": "x"} | ({} if patient is None else {"patient": patient})
        (case / "truth" / "case.json").write_text(json.dumps({"case": case.name, "head": head}))
        cases.append({"case": case.name})
    (synthetic / "manifest.json").write_text(json.dumps({"cases": cases}))
    seen: dict[str, list[str]] = {}

    def record(config: TrainConfig, out: Path, *args: object) -> Path:
        seen[out.name] = [f"{Path(c).parent.name}/{Path(c).name}" for c in args[1]]  # type: ignore[attr-defined]
        return trained

    monkeypatch.setattr("ich.train.folds.train", record)
    config = tiny.model_copy(update={"data": (synthetic,), "validation": None})
    cross_validate(config, tmp_path / "cv", folds=2, fold_data=[real])
    folds = json.loads((tmp_path / "cv" / "folds.json").read_text())["cases"]
    for fold in (0, 1):
        held = {c["patient"] for c in folds if c["fold"] == fold}
        used = seen[f"fold_{fold}"]
        assert "synthetic/case_00002" in used  # a procedural head trains every fold
        for n, patient in enumerate(("ct-ich:049", "ct-ich:050")):
            assert (f"synthetic/case_{n:05d}" in used) == (patient not in held)
        assert not {f"real/case_{p.split(':')[1]}" for p in held} & set(used)


def test_two_processes_train_data_parallel_with_gloo(small_synth: Path, tmp_path: Path) -> None:
    config = load_config(TINY).model_dump(mode="json")
    config.update(data=[str(small_synth)], cache=str(tmp_path / "cache"), validate_every=100)
    (tmp_path / "ddp.yaml").write_text(json.dumps(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
    ]
    command = [*torchrun, "-m", "ich", "train", "--config", str(tmp_path / "ddp.yaml"),
               "--out", str(tmp_path / "run")]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    events = [
        json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    ]
    assert events[0]["world_size"] == 2
    assert events[-1] == {"event": "end", "step": 4, "replicas_in_sync": True}
    assert (tmp_path / "run" / "model.pt").is_file()


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\ndata: []\nsteps: 0\n")
    with pytest.raises(TrainConfigError, match="steps"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(TrainConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "mined.yaml").write_text("name: x\ndata: [d]\nsteps: 1\nhard_negatives: mined\n")
    with pytest.raises(TrainConfigError, match="mined needs a model to mine with"):
        load_config(tmp_path / "mined.yaml")


def test_operating_threshold_keeps_the_specificity() -> None:
    negatives = np.array([0.1, 0.2, 0.3, 0.9])
    positives = np.array([0.5, 0.95])
    # 75% specificity allows one of four negatives above: just above 0.3.
    assert threshold_at_specificity(positives, negatives, 0.75) == pytest.approx(0.3001)
    assert threshold_at_specificity(positives, negatives, 1.0) == pytest.approx(0.9001)
    assert threshold_at_specificity(positives, np.array([]), 0.975) == 0.5


def test_evaluate_writes_the_report_of_a_model(
    trained: Path, small_synth: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["evaluate", "--data", str(small_synth), "--out", str(tmp_path),
                              "--model", str(trained), "--resamples", "20"])  # fmt: skip
    assert out.exit_code == 0, out.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["exams"] == 4
    assert (tmp_path / "report.md").is_file() and (tmp_path / "roc.png").is_file()
    assert runner.invoke(app, ["evaluate", "--out", str(tmp_path)]).exit_code == 2


@pytest.mark.realdata
def test_real_slices_are_read_and_scored(trained: Path, real: Path) -> None:
    from ich.evaluate.slices import bhsd_slices, ctich_slices, evaluate_slices, rsna_png_slices

    ctich, bhsd, rsna = ctich_slices(real), bhsd_slices(real), rsna_png_slices(real)
    assert len(ctich) == 15 and all(s.mask is not None and s.mask.any() for s in ctich)
    assert len(bhsd) == 36 and bhsd[0].hu.shape == (512, 512)
    assert len(rsna) == 200 and sum(s.positive for s in rsna) == 100
    # Parenchyma lands near 33 HU, CT-ICH's air near -1000 HU.
    assert abs(float(np.median(rsna[0].hu[(rsna[0].hu > 10) & (rsna[0].hu < 60)])) - 33) < 8
    assert float(ctich[0].hu.min()) < -900
    analyzer = Analyzer(trained)
    results = evaluate_slices(analyzer.detect, analyzer.config.input, analyzer.operating_point,
                              real)  # fmt: skip
    assert results["rsna_png"]["slices"] == 200 and 0 <= results["rsna_png"]["auc"] <= 1
    assert 0 <= results["ctich"]["dice_pooled"] <= 1


@pytest.mark.parametrize("name", sorted(p.stem for p in TINY.parent.glob("*.yaml")))
def test_bundled_configs_parse_and_build(name: str) -> None:
    from ich.model.grow import check_growable
    from ich.model.mask_rcnn import build_mask_rcnn

    config = load_config(TINY.parent / f"{name}.yaml")
    network = build_mask_rcnn(config.model)
    assert sum(p.numel() for p in network.parameters()) > 1000
    if config.init is None:
        return
    init = Path(config.init)
    if init.parts[0] == "runs":  # another variant's all-patient run, e.g. runs/real-focus/model.pt
        source = load_config(TINY.parent / f"{init.parts[1]}.yaml").model
    else:  # a file shipped in the checkout
        source = load_model(Path(__file__).parents[2] / init)[1]
    check_growable(source, config.model)  # fine-tuning starts from the model or a smaller one


def test_a_region_survives_training_target_and_mask_read_back_unchanged() -> None:
    """Box convention round trip: label -> training box and RoIAlign mask target (what the
    head learns) -> the mask sampled back onto the plane. A half-pixel slip would lose or add
    a rim of pixels on two sides of every bleed."""
    import torch
    from torchvision.models.detection.roi_heads import project_masks_on_boxes

    from ich.preprocess import InputSpec, ModelGrid

    label = np.zeros((64, 64), dtype=np.uint8)
    label[20:30, 12:19] = 1
    found = targets(label)
    mask = project_masks_on_boxes(found["masks"], found["boxes"], torch.tensor([0]), 28)[0]
    air = np.full((1, 64, 64), -1000, dtype=np.int16)
    grid = ModelGrid.fit(air, (5.0, 1.0, 1.0), InputSpec(size=64, pixel_mm=1.0))
    back = grid.volume_mask(mask.numpy(), found["boxes"][0].numpy())
    np.testing.assert_array_equal(back, label == 1)


def test_a_flagged_class_always_flags_any_ich() -> None:
    from ich.evaluate.operating import choose_operating_point
    from ich.evaluate.runner import ExamOutcome
    from ich.schema import HemorrhageClass

    def exam(truth: dict, probability: dict) -> ExamOutcome:
        zero = {c: 0.0 for c in HemorrhageClass}
        return ExamOutcome(
            "x", {**zero, **truth}, {c: None for c in HemorrhageClass},
            {**zero, **probability}, max(probability.values()), zero, zero,
        )  # fmt: skip

    iph, sah = HemorrhageClass.IPH, HemorrhageClass.SAH
    outcomes = [exam({}, {iph: 0.9, sah: 0.2}), exam({}, {iph: 0.1, sah: 0.3}),
                exam({sah: 2.0}, {iph: 0.1, sah: 0.8})]  # fmt: skip
    point = choose_operating_point(outcomes, 1.0, "test")
    assert point.thresholds[sah] == pytest.approx(0.3001)
    assert point.any_ich <= min(point.thresholds.values())


def test_a_continued_cross_validation_starts_each_fold_from_its_own_earlier_model(
    tiny: TrainConfig, trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real"
    import_ctich(small_source(tmp_path / "source", patients=4), real)
    started: dict[str, Path | None] = {}

    def record(config: TrainConfig, out: Path, *args: object) -> Path:
        started[out.name] = config.init
        return trained

    monkeypatch.setattr("ich.train.folds.train", record)
    config = tiny.model_copy(update={"validation": None, "init": trained})
    cross_validate(config, tmp_path / "first", folds=2, fold_data=[real])
    assert started == {"fold_0": trained, "fold_1": trained}
    for fold in (0, 1):  # the earlier run's fold models, as `train` writes them
        (tmp_path / "first" / f"fold_{fold}").mkdir(exist_ok=True)
        shutil.copy(trained, tmp_path / "first" / f"fold_{fold}" / "model.pt")
    later = config.model_copy(update={"fold_init": tmp_path / "first"})
    cross_validate(later, tmp_path / "later", folds=2, fold_data=[real])
    assert started == {f"fold_{k}": tmp_path / "first" / f"fold_{k}" / "model.pt" for k in (0, 1)}


def test_a_continued_cross_validation_refuses_other_folds_or_unfinished_ones(
    tiny: TrainConfig, trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real"
    import_ctich(small_source(tmp_path / "source", patients=4), real)
    monkeypatch.setattr("ich.train.folds.train", lambda *args: trained)
    config = tiny.model_copy(update={"validation": None})
    earlier = tmp_path / "first"
    cross_validate(config, earlier, folds=2, fold_data=[real])
    (earlier / "fold_0").mkdir()
    shutil.copy(trained, earlier / "fold_0" / "model.pt")
    later = config.model_copy(update={"fold_init": earlier})
    with pytest.raises(TrainingError, match=r"no model for fold\(s\) \[1\]"):
        cross_validate(later, tmp_path / "later", folds=2, fold_data=[real])
    (earlier / "fold_1").mkdir()
    shutil.copy(trained, earlier / "fold_1" / "model.pt")
    record = json.loads((earlier / "folds.json").read_text())
    for case in record["cases"]:
        case["fold"] = 1 - case["fold"]  # every held-out patient was trained on
    (earlier / "folds.json").write_text(json.dumps(record))
    with pytest.raises(TrainingError, match=r"other folds .* held-out patients"):
        cross_validate(later, tmp_path / "later", folds=2, fold_data=[real])
    with pytest.raises(TrainingError, match=r"holds no folds\.json"):
        cross_validate(later.model_copy(update={"fold_init": real}), tmp_path / "x", folds=2,
                       fold_data=[real])  # fmt: skip


def test_fine_tuning_grows_a_deeper_network_and_refuses_another(
    tiny: TrainConfig, trained: Path, tmp_path: Path
) -> None:
    from ich.model.config import Stage

    def with_stages(*stages: Stage) -> TrainConfig:
        detector = tiny.model.detector.model_copy(update={"stages": stages})
        model = tiny.model.model_copy(update={"detector": detector})
        return tiny.model_copy(
            update={"model": model, "init": trained, "validation": None, "steps": 2}
        )

    first, *rest = tiny.model.detector.stages
    deeper = with_stages(Stage(channels=first.channels, blocks=3), *rest)
    deeper = deeper.model_copy(update={"hard_fraction": 0.5, "hard_negatives": "mined"})
    grown = train(deeper, tmp_path / "grown")  # mined by the smaller model, grown
    assert load_model(grown)[1] == deeper.model
    wider = with_stages(Stage(channels=2 * first.channels), *rest)
    with pytest.raises(TrainingError, match=f"stage 0 has {2 * first.channels} channels"):
        train(wider, tmp_path / "wider")

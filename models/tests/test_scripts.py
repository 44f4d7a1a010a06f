import csv
import os
import subprocess
import sys

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts")


def test_write_split_labels_writes_absolute_paths_of_test_patients_only(tmp_path):
    data = tmp_path / "data"
    for source_set in ("srahim", "eyepacs-raw", "eyepacs-processed"):
        os.makedirs(data / source_set)
        rows = ["image,patient_id,eye,grade\n"] + [f"images/{i}.jpg,{source_set}-{i},L,{i % 5}\n" for i in range(200)]
        (data / source_set / "labels.csv").write_text("".join(rows))
    out = tmp_path / "out"
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "write_split_labels.py"), "--data", str(data), "--out", str(out)],
                   check=True, capture_output=True)
    with open(out / "test-srahim.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert 20 <= len(rows) <= 60  # ~20% of 200 patients
    assert all(os.path.isabs(r["image"]) and r["image"].startswith(str(data / "srahim")) for r in rows)
    sys.path.insert(0, os.path.join(SCRIPTS, "..", "src"))
    from fundus_cbr.data import split_of_patient

    assert all(split_of_patient(r["patient_id"], 0.2, 0.15) == "test" for r in rows)


def test_pack_cache_ships_train_and_validation_patients_only_and_every_image_it_lists(tmp_path):
    from PIL import Image

    sys.path.insert(0, os.path.join(SCRIPTS, "..", "src"))
    from fundus_cbr.data import read_cache_index, split_of_patient

    cache = tmp_path / "cache"
    os.makedirs(cache / "crops")
    header = "cache_path,source_set,image,patient_id,eye,grade,orig_width,orig_height,crop_x,crop_y,crop_side\n"
    rows = []
    for i in range(60):
        source_set = ("srahim", "eyepacs-raw", "eyepacs-processed", "lesions")[i % 4]
        grade = "" if source_set == "lesions" else str(i % 5)
        Image.new("RGB", (16, 16), (i * 4, 80, 40)).save(cache / "crops" / f"{i}.png")
        rows.append(f"crops/{i}.png,{source_set},images/{i}.jpg,{source_set}-{i},L,{grade},16,16,0,0,16\n")
    (cache / "index.csv").write_text(header + "".join(rows))
    out = tmp_path / "packed"
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "pack_cache.py"), "--cache", str(cache), "--out", str(out)],
                   check=True, capture_output=True)
    packed = read_cache_index(str(out))
    expected = [r for r in read_cache_index(str(cache))
                if r.source_set != "lesions" and split_of_patient(r.patient_id, 0.2, 0.15) != "test"]
    assert [r.patient_id for r in packed] == [r.patient_id for r in expected]
    assert 0 < len(packed) < 45  # some graded patients are test patients and stayed behind
    for record in packed:
        with Image.open(out / record.cache_path) as image:
            assert image.format == "WEBP" and image.size == (16, 16)


def _synthetic_cache(root, patients: int = 60, size: int = 64):
    """A cache in the product's layout: synthetic fundus crops of as-taken and processed sets, two eyes each."""
    from PIL import Image

    sys.path.insert(0, os.path.join(SCRIPTS, "..", "src"))
    from fundus_cbr.data import make_synthetic_fundus

    images, grades = make_synthetic_fundus(2 * patients, size, seed=3)
    os.makedirs(root / "crops")
    header = "cache_path,source_set,image,patient_id,eye,grade,orig_width,orig_height,crop_x,crop_y,crop_side\n"
    rows = []
    for i in range(2 * patients):
        source_set = ("srahim", "eyepacs-raw", "eyepacs-processed")[(i // 2) % 3]
        Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(root / "crops" / f"{i}.png")
        rows.append(f"crops/{i}.png,{source_set},images/{i}.jpg,{source_set}-{i // 2},{'LR'[i % 2]},{grades[i]},"
                    f"{size},{size},0,0,{size}\n")
    (root / "index.csv").write_text(header + "".join(rows))
    return root


def _run_train(cache, out, *extra: str) -> subprocess.CompletedProcess:
    """scripts/train.py for two steps of two images per grade on CPU, as a user would run it."""
    return subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, "train.py"), "--cache", str(cache), "--out", str(out), "--device", "cpu",
         "--steps", "2", "--images-per-grade", "2", "--threads", "1", *extra],
        capture_output=True, text=True, timeout=600,
    )


def test_train_script_runs_end_to_end_on_a_cache_and_saves_a_loadable_checkpoint(tmp_path):
    sys.path.insert(0, os.path.join(SCRIPTS, "..", "src"))
    import torch

    from fundus_cbr.checkpoint import load_checkpoint

    cache = _synthetic_cache(tmp_path / "cache")
    out = tmp_path / "run"
    result = _run_train(cache, out, "--eval-every", "2", "--log-every", "1", "--ema-decay", "0.9",
                        "--grade-regression-weight", "1.0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "validation step 2:" in result.stdout and "done: step 2/2, best validation macro P@10" in result.stdout
    model = load_checkpoint(str(out / "best.pt"))
    with torch.no_grad():
        embedding = model(torch.full((1, 3, 256, 256), 100.0)).embedding
    assert embedding.shape == (1, 128) and torch.allclose(embedding.norm(dim=1), torch.ones(1), atol=1e-5)


def test_train_script_refuses_a_checkpoint_that_does_not_fit_the_backbone(tmp_path):
    import torch
    import torchvision

    cache = _synthetic_cache(tmp_path / "cache", patients=30)
    checkpoint = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), checkpoint)
    result = _run_train(cache, tmp_path / "run", "--init-checkpoint", str(checkpoint))
    assert result.returncode != 0
    assert "fits" in result.stderr and "--width 1 --stages 4" in result.stderr
    assert not (tmp_path / "run" / "best.pt").exists()


def test_train_script_resumes_across_calls_and_pack_cache_cuts_parts(tmp_path):
    cache = _synthetic_cache(tmp_path / "cache")
    out = tmp_path / "run"
    first = _run_train(cache, out, "--eval-every", "2", "--resume", "--run-steps", "1")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "paused: step 1/2" in first.stdout and (out / "state.pt").exists() and not (out / "last.pt").exists()
    second = _run_train(cache, out, "--eval-every", "2", "--resume")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed from" in second.stdout and "done: step 2/2" in second.stdout and (out / "last.pt").exists()

    sys.path.insert(0, os.path.join(SCRIPTS, "..", "src"))
    from fundus_cbr.data import read_cache_index

    packed = tmp_path / "packed"
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "pack_cache.py"), "--cache", str(cache), "--out", str(packed),
                    "--max-mib", "0.05"], check=True, capture_output=True)
    parts = sorted(p for p in os.listdir(packed) if p.startswith("part-"))
    assert len(parts) >= 2
    names = []
    for part in parts:
        size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(packed / part) for f in files)
        assert size <= 0.05 * 2**20 + 4096  # the index's own bytes are estimated per row
        records = read_cache_index(str(packed / part))
        assert all((packed / part / r.cache_path).exists() for r in records)
        names += [r.cache_path for r in records]
    assert len(names) == len(set(names)) > 0


def test_onnx_to_checkpoint_rebuilds_a_model_that_embeds_as_its_onnx_file(tmp_path):
    import shutil

    import pytest
    import torch

    sys.path.insert(0, os.path.join(SCRIPTS, "..", "src"))
    from fundus_cbr.checkpoint import load_checkpoint
    from fundus_cbr.config import ModelConfig
    from fundus_cbr.data import load_images, read_cache_index
    from fundus_cbr.export import ORT_NODE, export_onnx
    from fundus_cbr.model import FundusEmbedder

    if shutil.which("node") is None or not os.path.isdir(ORT_NODE):
        pytest.skip("node or node_modules/onnxruntime-node missing: run npm ci at the repository root")
    cache = _synthetic_cache(tmp_path / "cache", patients=30, size=64)
    torch.manual_seed(0)
    original = FundusEmbedder(ModelConfig(input_size=64))
    with torch.no_grad():  # trained-looking BatchNorms (random affine and statistics), so folding is not a no-op
        for module in original.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 2.0)
        original.mirror.horizontal.output.weight.normal_(0, 0.1)
    original.eval()
    export_onnx(original, str(tmp_path / "m.onnx"), model_version="rebuild-test")
    result = subprocess.run([sys.executable, os.path.join(SCRIPTS, "onnx_to_checkpoint.py"), "--onnx", str(tmp_path / "m.onnx"),
                             "--cache", str(cache), "--out", str(tmp_path / "rebuilt.pt"), "--images", "30"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rebuilt = load_checkpoint(str(tmp_path / "rebuilt.pt"))
    images = load_images(read_cache_index(str(cache))[:6], str(cache), 64).float()
    with torch.no_grad():
        assert torch.allclose(rebuilt(images).embedding, original(images).embedding, atol=1e-4)
        # Its BatchNorms are not the original's (those cannot be read back), yet they give the same outputs.
        assert not torch.allclose(rebuilt.backbone.bn1.weight, original.backbone.bn1.weight)


def test_evaluate_script_scores_models_of_two_input_sizes_each_on_the_cache_of_its_size(tmp_path):
    import json

    small, large = _synthetic_cache(tmp_path / "cache64", size=64), _synthetic_cache(tmp_path / "cache96", size=96)
    for cache, size in ((small, 64), (large, 96)):
        trained = _run_train(cache, tmp_path / f"run{size}", "--input-size", str(size))
        assert trained.returncode == 0, trained.stderr[-2000:]
    out = tmp_path / "metrics.json"
    # The first model is not of the first cache's size: it must read the 96-px cache, not the 64-px one resized.
    result = subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, "evaluate.py"), "--cache", str(small), "--cache", str(large),
         "--model", f"large={tmp_path / 'run96' / 'best.pt'}", "--model", f"small={tmp_path / 'run64' / 'best.pt'}",
         "--reference", "large", "--bootstrap", "10", "--threads", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(out.read_text())
    as_taken = results["groups"]["as_taken"]
    assert {"large", "small"} <= set(as_taken) and as_taken["large"]["queries"] == as_taken["small"]["queries"] > 0
    assert "large - small" in results["paired_differences"]

    sys.path.insert(0, SCRIPTS)
    from evaluate import cache_for, cache_size

    sizes = {str(small): cache_size(str(small)), str(large): cache_size(str(large))}
    assert sizes == {str(small): 64, str(large): 96}
    assert cache_for([str(small), str(large)], sizes, 96) == str(large)
    assert cache_for([str(small), str(large)], sizes, 128) == str(small)  # no such cache: the first, resized


def test_pretrain_script_uses_training_patients_and_their_lesion_copies_only_and_resumes(tmp_path):
    sys.path.insert(0, os.path.join(SCRIPTS, "..", "src"))
    from fundus_cbr.data import read_cache_index, select_pretraining_records, split_of_patient

    cache = _synthetic_cache(tmp_path / "cache", patients=30, size=32)
    rows = (cache / "index.csv").read_text().splitlines()
    # A split_key column, as a packed cache has: lesion copies of IDRiD photographs of patients on every side, and
    # DIARETDB1 stand-ins with none.
    lines = [rows[0] + ",split_key"] + [row + "," for row in rows[1:]]
    ids = [f"idrid-{i:03d}" for i in range(40)]
    for i, patient in enumerate(ids):
        lines.append(f"crops/{i}.png,lesions,images/l{i}.jpg,lesions-{i:04d},,,32,32,0,0,32,{patient if i < 30 else ''}")
    (cache / "index.csv").write_text("\n".join(lines) + "\n")
    expected = select_pretraining_records(read_cache_index(str(cache)), 0.2, 0.15)
    lesions = sum(r.source_set == "lesions" for r in expected)
    assert 0 < lesions < sum(split_of_patient(p, 0.2, 0.15) == "train" for p in ids)

    def run(*extra):
        return subprocess.run(
            [sys.executable, os.path.join(SCRIPTS, "pretrain_ssl.py"), "--cache", str(cache), "--out", str(tmp_path / "ssl"),
             "--input-size", "32", "--batch-size", "4", "--steps", "2", "--eval-every", "2", "--threads", "1",
             "--resume", "--channels-last", *extra], capture_output=True, text=True, timeout=600)

    first = run("--run-steps", "1")
    assert first.returncode == 0, first.stderr[-2000:]
    assert f"loaded {len(expected)} training patients' images" in first.stdout
    assert f"lesions {lesions}," in first.stdout and "paused: step 1/2" in first.stdout
    assert not (tmp_path / "ssl" / "pretrained.pt").exists()
    second = run("--state-every", "1")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed from" in second.stdout and "done: step 2/2" in second.stdout
    assert (tmp_path / "ssl" / "pretrained.pt").exists()
    # A pack for the GPU carries the same lesion copies (and no other lesion image) when asked to.
    packed = tmp_path / "packed"
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "pack_cache.py"), "--cache", str(cache), "--out", str(packed),
                    "--with-lesions"], check=True, capture_output=True)
    packed_lesions = [r for r in read_cache_index(str(packed)) if r.source_set == "lesions"]
    assert [r.patient_id for r in packed_lesions] == [r.patient_id for r in expected if r.source_set == "lesions"]


def test_ablation_tables_print_curves_per_source_figures_and_mark_intervals_that_exclude_zero(tmp_path):
    import json

    def run_folder(name, scores):
        folder = tmp_path / name
        folder.mkdir()
        history = [{"step": step, "macro_p@10": p, "knn_qwk": q} for step, (p, q) in scores.items()]
        (folder / "training.json").write_text(json.dumps({"history": history}))
        return f"{name}={folder}"

    def entry(p, q):
        return {"summary": {"macro_p@10": p, "knn_qwk": q}, "ci95": {"macro_p@10": [p - 0.01, p + 0.01],
                                                                   "knn_qwk": [q - 0.1, q + 0.1]}, "queries": 90}

    trivial = {"summary": {"macro_p@10": 0.2, "knn_qwk": 0.0}}
    results = {
        "groups": {"srahim": {"a": entry(0.33, 0.68), "b": entry(0.31, 0.65), "random_ranking": trivial,
                              "always_majority": trivial}},
        "paired_differences": {"a - b": {"srahim": {"macro_p@10": {"difference": 0.02, "ci95": [0.005, 0.04]},
                                                    "knn_qwk": {"difference": 0.03, "ci95": [-0.07, 0.12]}}}},
        "lesions": {"a": {"mean_ratio": 0.6, "ci95": [0.54, 0.67], "median_ratio": 0.58, "images": 25, "map": "mirror"}},
        "lesion_paired": {"a": {"minus uniform-over-fundus": {"difference": -0.78, "ci95": [-0.84, -0.71]}}},
    }
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(results))
    out = subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, "ablation_tables.py"), "--results", str(results_path),
         "--arm", run_folder("a", {100: (0.40, 0.70), 200: (0.44, 0.75)}), "--arm", run_folder("b", {100: (0.43, 0.73)})],
        check=True, capture_output=True, text=True).stdout
    assert "| a | **0.440 / 0.750** (200) | 0.400 / 0.700 | 0.440 / 0.750 |" in out
    assert "| b | **0.430 / 0.730** (100) | 0.430 / 0.730 |  |" in out
    assert "| srahim, among test patients (90) | 0.330 [0.320, 0.340] | 0.310 [0.300, 0.320] | 0.200 | 0.200 |" in out
    assert "**+0.020 [+0.005, +0.040]**" in out  # excludes 0: bold
    assert "| +0.030 [-0.070, +0.120] |" in out  # spans 0: plain
    assert "| a (mirror) | 25 | 0.60 [0.54, 0.67] | 0.58 | -0.78 [-0.84, -0.71] |  |" in out

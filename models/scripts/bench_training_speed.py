"""CPU training speed of the shipped recipe and what changes it: threads, BLAS library, oneDNN, channels_last, image
size, batch size. Each variant runs in its own process (thread counts and the BLAS library are fixed per process)
on synthetic fundus images, so no data is needed; one warm-up step, then --steps timed steps of the full training
step (grade-balanced batch, augmentation, three-view mirror-attention forward, fine triplet + grade read-out,
backward, AdamW, weight average), as models/src/fundus_cbr/training.py does it.

  nice -n 10 /usr/bin/python3 models/scripts/bench_training_speed.py --steps 3 --out models/results/cpu-training-speed

Writes <out>.json and <out>.md (a table: seconds per step, steps and images per second, ratio to the shipped
recipe's row measured in the same run).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

REFERENCE_BLAS = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3"
OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"

# name, settings. The first row is the shipped recipe (80-image batches: 5 grades x 16, 256 px, 2 threads).
VARIANTS = [
    ("shipped recipe: 256 px, batch 80, 2 threads", {}),
    ("1 thread", {"threads": 1}),
    ("channels_last", {"channels_last": True}),
    ("oneDNN (mkldnn) off", {"mkldnn": False}),
    ("reference BLAS (LD_PRELOAD) instead of OpenBLAS", {"blas": REFERENCE_BLAS}),
    ("batch 30 (6 per grade)", {"images_per_grade": 6}),
    ("192 px", {"size": 192}),
    ("384 px", {"size": 384}),
    ("512 px", {"size": 512}),
    ("384 px, channels_last", {"size": 384, "channels_last": True}),
]


def run_variant(settings: dict, steps: int) -> dict:
    import numpy as np
    import torch

    from fundus_cbr.config import LossConfig, ModelConfig, TrainConfig
    from fundus_cbr.data import GradeBalancedBatchSampler, augment_batch, make_synthetic_fundus
    from fundus_cbr.model import FundusEmbedder
    from fundus_cbr.training import compute_loss, ema_decay_at, make_grade_regressor, seed_everything, update_ema

    threads = settings.get("threads", 2)
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = settings.get("mkldnn", True)
    size = settings.get("size", 256)
    channels_last = settings.get("channels_last", False)
    config = TrainConfig(
        model=ModelConfig(input_size=size, attention="mirror"),
        loss=LossConfig(kind="fine_triplet", grade_regression_weight=1.0),
        images_per_grade=settings.get("images_per_grade", 16),
        ema_decay=0.998,
        threads=threads,
    )
    generator = seed_everything(0)
    images, grades = make_synthetic_fundus(100, size, seed=0)
    model = FundusEmbedder(config.model)
    regressor = make_grade_regressor(config)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    averaged = FundusEmbedder(config.model).eval()
    averaged.load_state_dict(model.state_dict())
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(regressor.parameters()), lr=1e-3, weight_decay=0.05)
    sampler = GradeBalancedBatchSampler(grades, np.ones(len(grades)), config.grades_per_batch, config.images_per_grade, 0)
    times, cpu_times = [], []
    for step in range(steps + 1):
        began, cpu_began = time.perf_counter(), time.process_time()
        indices = sampler.next_batch()
        batch = augment_batch(images[torch.from_numpy(indices)], generator, config.augmentation)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        loss, _ = compute_loss(model, batch, torch.from_numpy(grades[indices]).long(), config, regressor)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        update_ema(averaged, model, ema_decay_at(step, 0.998))
        times.append(time.perf_counter() - began)
        cpu_times.append(time.process_time() - cpu_began)
    timed = sorted(times[1:])
    seconds = timed[len(timed) // 2]
    cpu_seconds = sorted(cpu_times[1:])[len(timed) // 2]
    batch_size = config.grades_per_batch * config.images_per_grade
    return {"seconds_per_step": seconds, "cpu_seconds_per_step": cpu_seconds, "all_steps": times, "batch": batch_size, "size": size, "threads": threads,
            "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant (after one warm-up step)")
    parser.add_argument("--out", default=None, help="results path without extension")
    parser.add_argument("--only", default=None, help="comma-separated variant numbers (0 = shipped)")
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)  # internal: one variant, JSON on stdout
    args = parser.parse_args()
    if args.variant is not None:
        print(json.dumps(run_variant(json.loads(args.variant), args.steps)))
        return
    chosen = range(len(VARIANTS)) if args.only is None else [int(i) for i in args.only.split(",")]
    rows = []
    for index in chosen:
        name, settings = VARIANTS[index]
        env = dict(os.environ)
        env.pop("OMP_NUM_THREADS", None)
        if "blas" in settings:
            env["LD_PRELOAD"] = settings["blas"]
        began = time.time()
        done = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--variant", json.dumps(settings)],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(f"{name}: failed\n{done.stderr[-2000:]}", flush=True)
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result.update(name=name, settings=settings, wall_seconds=time.time() - began,
                      load_average=os.getloadavg()[0])
        rows.append(result)
        print(f"{name}: {result['seconds_per_step']:.2f} s/step, CPU {result['cpu_seconds_per_step']:.2f} s/step (steps {[round(t, 2) for t in result['all_steps']]}), "
              f"load {result['load_average']:.1f}", flush=True)
    if args.out and rows:
        reference = next((r for r in rows if r["settings"] == {}), rows[0])
        lines = [
            f"CPU training speed, `{' '.join(['models/scripts/bench_training_speed.py'] + sys.argv[1:])}`, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {reference['torch']}, "
            f"{os.cpu_count()} cores shared with other jobs (1-minute load average when each row ended in the last "
            "column). Median of the timed steps after one warm-up step. On a loaded machine wall-clock time mostly "
            "measures the other jobs: CPU s/step (user + system time of the process, all its threads) is the "
            "comparable figure, and on an idle machine wall time is about CPU time / threads where threads help. "
            "Ratios = the shipped row's CPU s/step / this row's (above 1 = less work per step), both from this run.",
            "",
            "| variant | batch | px | threads | wall s/step | CPU s/step | steps/s (wall) | images per CPU s | ratio to shipped (CPU) | load |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            s, c = r["seconds_per_step"], r["cpu_seconds_per_step"]
            lines.append(f"| {r['name']} | {r['batch']} | {r['size']} | {r['threads']} | {s:.2f} | {c:.2f} | {1 / s:.3f} | "
                         f"{r['batch'] / c:.1f} | {reference['cpu_seconds_per_step'] / c:.2f} | {r['load_average']:.1f} |")
        with open(args.out + ".md", "w") as handle:
            handle.write("\n".join(lines) + "\n")
        with open(args.out + ".json", "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()

"""Markdown tables of an ablation: each arm's validation curve (its training.json) and, from evaluate.py's JSON, the
test figures per source with paired differences against the reference arm and the heat-map lesion mass.

  /usr/bin/python3 models/scripts/ablation_tables.py --results models/results/test-metrics-cpu-ablation-256-s1.json \
      --arm mirror-ftl=models/checkpoints/cpu-ablation-256/mirror-ftl-s1 --arm gem-ftl=... [--reference mirror-ftl]
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Dict, List

GROUPS = [  # (results group, label)
    ("srahim", "srahim, among test patients"),
    ("eyepacs-raw", "eyepacs-raw, among test patients"),
    ("aptos", "aptos, among test photographs (upper bound)"),
    ("idrid", "idrid, among test photographs"),
    ("as_taken", "srahim + eyepacs-raw, among test patients"),
    ("eyepacs-processed", "eyepacs-processed (apart)"),
    ("as_taken_vs_case_base", "srahim + eyepacs-raw against the whole case base"),
]


def validation_table(arms: Dict[str, str]) -> str:
    curves = {name: json.load(open(os.path.join(folder, "training.json")))["history"] for name, folder in arms.items()}
    steps = sorted({entry["step"] for history in curves.values() for entry in history})
    lines = ["| arm | best (step) | " + " | ".join(str(s) for s in steps) + " |", "|---" * (len(steps) + 2) + "|"]
    for name, history in curves.items():
        by_step = {entry["step"]: entry for entry in history}
        best = max(history, key=lambda entry: entry["macro_p@10"])
        cells = [f"{by_step[s]['macro_p@10']:.3f} / {by_step[s]['knn_qwk']:.3f}" if s in by_step else "" for s in steps]
        lines.append(f"| {name} | **{best['macro_p@10']:.3f} / {best['knn_qwk']:.3f}** ({best['step']}) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def interval(entry, metric: str) -> str:
    value = entry["summary"][metric]
    low, high = entry["ci95"][metric]
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def test_tables(results, arms: List[str], reference: str) -> str:
    out = []
    for metric, label in (("macro_p@10", "macro P@10"), ("knn_qwk", "kNN QWK")):
        header = ["queries (test photographs)"] + arms + ["random", "majority"]
        lines = [f"**{label}**, 95% patient-bootstrap intervals:", "", "| " + " | ".join(header) + " |",
                 "|---" * len(header) + "|"]
        for group, name in GROUPS:
            entries = results["groups"].get(group)
            if not entries:
                continue
            first = entries[arms[0]]
            cells = [interval(entries[arm], metric) for arm in arms]
            cells += [f"{entries[b]['summary'][metric]:.3f}" for b in ("random_ranking", "always_majority")]
            lines.append(f"| {name} ({first['queries']}) | " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
        paired = [f"**{label}, paired: {reference} minus each arm** (the same patient resamples):", "",
                  "| queries | " + " | ".join(a for a in arms if a != reference) + " |",
                  "|---" * len(arms) + "|"]
        for group, name in GROUPS:
            cells = []
            for arm in arms:
                if arm == reference:
                    continue
                entry = results["paired_differences"].get(f"{reference} - {arm}", {}).get(group, {}).get(metric)
                if entry is None:
                    cells.append("")
                    continue
                low, high = entry["ci95"]
                mark = "**" if low > 0 or high < 0 else ""
                cells.append(f"{mark}{entry['difference']:+.3f} [{low:+.3f}, {high:+.3f}]{mark}")
            if any(cells):
                paired.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("\n".join(paired))
    lesions = ["**Heat-map mass in lesion boxes** (1.0 = a map uniform over the image; interval over images; paired "
               "differences over the same images):", "",
               "| map | images | mean ratio | median | minus uniform-over-fundus | " + reference + " minus this |",
               "|---|---|---|---|---|---|"]
    for name, entry in results["lesions"].items():
        pairs = results.get("lesion_paired", {}).get(name, {})

        def pair(key):
            value = pairs.get(key)
            if value is None:
                return ""
            return f"{value['difference']:+.2f} [{value['ci95'][0]:+.2f}, {value['ci95'][1]:+.2f}]"

        lesions.append(f"| {name} ({entry['map']}) | {entry['images']} | {entry['mean_ratio']:.2f} "
                       f"[{entry['ci95'][0]:.2f}, {entry['ci95'][1]:.2f}] | {entry['median_ratio']:.2f} | "
                       f"{pair('minus uniform-over-fundus')} | {pair(reference + ' minus this')} |")
    out.append("\n".join(lesions))
    return "\n\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=None, help="evaluate.py's JSON (test figures); without it, validation only")
    parser.add_argument("--arm", action="append", required=True, help="name=run folder (with training.json)")
    parser.add_argument("--reference", default=None, help="the arm paired differences are against (the first)")
    args = parser.parse_args()
    arms = dict(item.split("=", 1) for item in args.arm)
    reference = args.reference or next(iter(arms))
    print("Validation macro P@10 / kNN QWK (690 photographs of validation patients) by step:\n")
    print(validation_table(arms))
    if args.results:
        print()
        print(test_tables(json.load(open(args.results)), list(arms), reference))


if __name__ == "__main__":
    main()

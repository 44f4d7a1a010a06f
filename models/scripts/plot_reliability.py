"""Draw the reuse step's reliability diagram and coverage-accuracy curve from the report that
`npm run fit-reuse` writes (held-out TEST patients), as one SVG.

  /usr/bin/python3 models/scripts/plot_reliability.py models/results/reuse-test.json models/results/reuse-reliability.svg
"""
from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

matplotlib.rcParams["svg.hashsalt"] = "fundus-cbr"  # stable ids: the committed SVG only changes when the data does


def main() -> None:
    report_path, out_path = sys.argv[1], sys.argv[2]
    with open(report_path) as handle:
        report = json.load(handle)
    methods = [("suggestion", "suggestion (calibrated vote)", "tab:blue"), ("plainVote", "plain 10-NN vote", "tab:orange")]
    figure, (reliability, coverage) = plt.subplots(1, 2, figsize=(10, 4.4))
    reliability.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    for key, label, colour in methods:
        bins = [b for b in report["reliability"][key] if b["count"] > 0]
        ece = report[key]["expectedCalibrationError"]
        reliability.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", color=colour, label=f"{label}, ECE {ece:.3f}")
        for b in bins:
            reliability.annotate(str(b["count"]), (b["confidence"], b["accuracy"]), textcoords="offset points", xytext=(4, -10), fontsize=7, color=colour)
    reliability.set_xlabel("confidence of the suggested grade (bin mean, 10 bins)")
    reliability.set_ylabel("accuracy in the bin")
    reliability.set_xlim(0, 1)
    reliability.set_ylim(0, 1)
    reliability.set_title(f"Reliability, {report['test']['photographs']} test photographs")
    reliability.legend(loc="upper left", fontsize=8)
    for key, label, colour in methods:
        points = sorted((p for p in report["coverageAccuracy"][key] if p["accuracy"] is not None), key=lambda p: p["coverage"])
        coverage.plot([p["coverage"] for p in points], [p["accuracy"] for p in points], marker="o", color=colour, label=label)
    chosen = report["suggestion"]["withAbstention"]
    coverage.scatter([chosen["coverage"]], [chosen["accuracy"]], s=120, facecolors="none", edgecolors="black", label=f"abstention threshold {chosen['threshold']:.2f} (chosen on validation)")
    coverage.set_xlabel("coverage (share of photographs answered)")
    coverage.set_ylabel("accuracy of the answered")
    coverage.set_xlim(0, 1.02)
    coverage.set_title("Abstaining: coverage against accuracy")
    coverage.legend(loc="lower left", fontsize=8)
    figure.suptitle(f"Reuse step, model {report['modelVersion']}; case base {report['caseBase']['photographs']} train photographs", fontsize=10)
    figure.tight_layout()
    figure.savefig(out_path, format="svg", metadata={"Date": None})


if __name__ == "__main__":
    main()

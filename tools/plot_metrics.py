r"""Plot losses, learning rate and AP over iterations from one or more runs' `metrics.json`.

    python tools/plot_metrics.py output/run_a output/run_b --output compare.png \
        --keys total_loss loss_class lr bbox/AP

Each run is a training output folder (or its metrics.json file: one JSON object per line with an
"iteration" and scalar values). Runs are overlaid in each panel, labelled by folder name. When a run
was resumed, the last value logged for an iteration wins. Without `total_loss` in the file, it is the
sum of the `loss_*` values of each record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DEFAULT_KEYS = ["total_loss", "loss_class", "loss_bbox", "loss_giou", "lr", "bbox/AP"]


def metrics_file(run: str) -> str:
    path = os.path.join(run, "metrics.json") if os.path.isdir(run) else run
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no metrics file at {path!r}; pass a training output folder or its metrics.json"
        )
    return path


def load_metrics(path: str) -> dict[int, dict[str, float]]:
    """{iteration: {key: value}} from a JSON-lines file; later lines overwrite earlier ones per key."""
    records: dict[int, dict[str, float]] = {}
    with open(path) as f:
        lines = [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]
    for lineno, line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if lineno == lines[-1][0]:  # a run killed mid-write leaves a partial last line
                break
            raise ValueError(f"{path}:{lineno}: not a JSON object: {e}") from None
        if not isinstance(rec, dict) or "iteration" not in rec:
            continue
        values = {k: float(v) for k, v in rec.items() if isinstance(v, int | float) and k != "iteration"}
        if "total_loss" not in values:
            losses = [v for k, v in values.items() if k.startswith("loss_")]
            if losses:
                values["total_loss"] = sum(losses)
        records.setdefault(int(rec["iteration"]), {}).update(values)
    return records


def series(records: dict[int, dict[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    its = sorted(i for i, vals in records.items() if key in vals)
    return np.array(its), np.array([records[i][key] for i in its])


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over `window` points (the first points average what exists)."""
    if window <= 1 or len(values) == 0:
        return values
    csum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (csum[idx] - csum[lo]) / (idx - lo)


def run_labels(runs: list[str]) -> list[str]:
    """Folder names; the parent is added when two runs share a name."""
    folders = [os.path.abspath(os.path.dirname(r) or "." if r.endswith(".json") else r) for r in runs]
    names = [os.path.basename(f) for f in folders]
    return [
        os.path.join(os.path.basename(os.path.dirname(f)), n) if names.count(n) > 1 else n
        for f, n in zip(folders, names)
    ]


def plot(
    runs: dict[str, dict[int, dict[str, float]]], keys: list[str], output: str, window: int = 1
) -> list[str]:
    """Write one panel per key with every run overlaid; returns the keys that had data."""
    found = [k for k in keys if any(series(r, k)[0].size for r in runs.values())]
    if not found:
        available = sorted({k for r in runs.values() for vals in r.values() for k in vals})
        raise KeyError(f"none of the keys {keys} appear in the metrics; available: {available}")
    ncols = min(3, len(found))
    nrows = (len(found) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 3.6 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, found):
        for label, records in runs.items():
            its, vals = series(records, key)
            if its.size == 0:
                continue
            sparse = its.size < 20  # eval results: a few points, shown with markers
            ax.plot(
                its, vals if sparse else smooth(vals, window), marker="o" if sparse else None, label=label
            )
        ax.set_title(key)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if key == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(found) :]:
        ax.axis("off")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return found


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", help="training output folders (or metrics.json files)")
    parser.add_argument("--output", default="metrics.png", help="PNG file to write (default: metrics.png)")
    parser.add_argument(
        "--keys", nargs="+", default=DEFAULT_KEYS, help=f"values to plot (default: {DEFAULT_KEYS})"
    )
    parser.add_argument("--smooth", type=int, default=1, help="moving-average window for dense curves")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.smooth < 1:
        parser.error(f"--smooth must be >= 1, got {args.smooth}")
    try:
        runs = dict(zip(run_labels(args.runs), (load_metrics(metrics_file(r)) for r in args.runs)))
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    try:
        found = plot(runs, args.keys, args.output, args.smooth)
    except KeyError as e:
        parser.error(e.args[0])
    missing = [k for k in args.keys if k not in found]
    if missing:
        print(f"not in any run (skipped): {', '.join(missing)}")
    print(f"wrote {args.output}: {', '.join(found)} for {len(runs)} run(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

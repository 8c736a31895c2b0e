"""tools/gpu_check.py: its --dry-run on the CPU writes the JSON a GPU run writes (the same keys, every
figure measured), it reads pytest's results as they come, and it finds every test marked cuda."""

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PARITY_CASES = ("anchor_detr_r50_50ep", "conditional_detr_r50_50ep")


def test_dry_run_writes_every_key_of_a_gpu_run(tmp_path):
    out = tmp_path / "x.json"
    proc = subprocess.run(
        [sys.executable, "tools/gpu_check.py", "--dry-run", "--output", str(out),
         "--tests-timeout", "3600", "--bench-budget", "3600"],  # no figure skipped on a slow machine
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report) == {
        "dry_run", "environment", "settings", "fps", "img_per_s", "peak_memory_mb", "parity", "tests", "errors"
    }  # fmt: skip
    assert report["dry_run"] is True and report["errors"] == {}
    assert {"device", "torch", "cuda", "commit", "memory"} <= set(report["environment"])

    models = {"anchor_detr_tiny", "conditional_detr_tiny"}
    assert set(report["fps"]) == set(report["img_per_s"]) == set(report["peak_memory_mb"]) == models
    for name in models:
        assert set(report["fps"][name]) == {"fp32", "bf16"}
        assert set(report["img_per_s"][name]) == {"fp32", "bf16", "fp16"}
        assert set(report["peak_memory_mb"][name]) == {
            "eval_fp32", "eval_bf16", "train_fp32", "train_bf16", "train_fp16"
        }  # fmt: skip
        figures = [*report["fps"][name].values(), *report["img_per_s"][name].values()]
        assert all(v > 0 for v in figures + list(report["peak_memory_mb"][name].values()))
    assert re.search(r"\| anchor_detr_tiny +\| +[\d.]+ \|", proc.stdout)  # the printed table

    tests = report["tests"]  # no CUDA here: every cuda test is collected and skips
    assert tests["skipped"] >= 10 and tests["passed"] == tests["failed"] == tests["error"] == 0
    assert all(r["message"] == "needs CUDA" for r in tests["results"])
    assert set(report["parity"]) == {f"{case}-{p}" for case in PARITY_CASES for p in ("ieee", "tf32")}
    assert all(entry["outcome"] == "skipped" for entry in report["parity"].values())


def test_results_and_recorded_parity_figures_are_read_from_pytest(tmp_path, script):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_parity_cuda.py").write_text(
        "import json, pytest\n"
        "@pytest.mark.parametrize('precision', ['ieee', 'tf32'])\n"
        "def test_case(precision, record_property):\n"
        "    record_property('parity', json.dumps({'precision': precision, 'loss_max_rel_diff': 1e-5}))\n"
        "    assert precision == 'ieee', 'loss_giou: 1.1 vs expected 1.0'\n"
        "def test_skipped():\n"
        "    pytest.skip('needs CUDA')\n"
    )
    xml = tmp_path / "out.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
         f"--junitxml={xml}", "test_parity_cuda.py"],
        cwd=tmp_path, capture_output=True, timeout=120,
    )  # fmt: skip
    gpu_check = script("tools/gpu_check.py")
    results = gpu_check.parse_junit(str(xml))
    outcomes = {r["test"]: r["outcome"] for r in results}
    assert outcomes == {
        "test_parity_cuda.py::test_case[ieee]": "passed",
        "test_parity_cuda.py::test_case[tf32]": "failed",
        "test_parity_cuda.py::test_skipped": "skipped",
    }
    parity = gpu_check.parity_results({"results": results})
    assert parity["ieee"] == {
        "outcome": "passed",
        "message": "",
        "precision": "ieee",
        "loss_max_rel_diff": 1e-5,
    }
    assert (
        parity["tf32"]["outcome"] == "failed"
        and "loss_giou: 1.1 vs expected 1.0" in parity["tf32"]["message"]
    )
    assert parity["tf32"]["loss_max_rel_diff"] == 1e-5  # recorded before the assertion failed


def test_every_cuda_test_lives_where_gpu_check_collects_them(script):
    gpu_check = script("tools/gpu_check.py")
    marker = re.compile(r"^(pytestmark = .*|@)pytest\.mark\.cuda\b", re.MULTILINE)
    marked = sorted(
        str(path.relative_to(REPO))
        for path in (REPO / "tests").rglob("*.py")
        if marker.search(path.read_text())
    )
    assert len(marked) >= 5
    assert marked == sorted(gpu_check.cuda_test_files())

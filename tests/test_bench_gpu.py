"""benchmarks/bench_gpu.py runs anywhere: without a GPU its GPU rows say why they were skipped."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the rows written without a GPU")
def test_bench_gpu_measures_the_cpu_and_states_why_the_gpu_rows_are_skipped(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SCRIPT.parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, str(SCRIPT), "--quick", "--files", "2", "--seconds", "4", "--clips", "300", "--long-minutes", "0.5",
                    "--out", str(tmp_path)], check=True, env=env, capture_output=True, timeout=1200)
    doc = json.loads((tmp_path / "bench_gpu.json").read_text())
    rows = doc["tables"][0]["rows"]
    assert [(r["measure"], r["device"]) for r in rows] == [
        (m, d) for m in ("tagging (musicnn, end to end)", "training bilstm-att", "training att",
                         "musicnn front end, 0.5-min signal") for d in ("cpu", "gpu")]
    for row in rows:
        if row["device"] == "gpu":
            assert row["status"].startswith("skipped: torch ") and "sees no CUDA device" in row["status"]
            assert row.get("wall_s") is None
        else:
            assert row["status"] == "measured" and row["wall_s"] > 0
    assert rows[0]["files"] == 2 and rows[0]["audio_s"] == 8.0 and rows[0]["audio_h_per_h"] > 0
    assert rows[2]["recorded_device"] == "cpu" and rows[2]["loop_clips_per_s"] > 0
    assert rows[6]["audio_s"] == 30.0 and rows[6]["gpu_peak_mib"] is None
    assert doc["targets"] == [] and doc["machine"]["gpu"] == rows[1]["status"]

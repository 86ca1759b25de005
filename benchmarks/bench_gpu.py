"""The GPU against the CPU: musicnn tagging end to end, training BiLSTM-ATT and ATT, and how
far the GPU's numbers are from the CPU's. One script, a few minutes on a machine with a GPU.

    python benchmarks/bench_gpu.py [--quick] [--out DIR] [--repeats R] [--files N] [--seconds S]
                                   [--clips N] [--epochs E] [--long-minutes M] [--device cuda]
                                   [--weights-dir DIR]

Measured, each the median of ``--repeats`` (default 2; 1 with ``--quick``), every command a
fresh process timed whole (interpreter and torch start-up, model load included):

* **Tagging**: ``instrec predict DIR --out tags.csv`` with the default model (musicnn front
  end) over ``--files`` synthetic ``--seconds``-s FLAC files (harmonic tones over noise,
  44.1 kHz stereo: decoding, down-mixing and resampling are real work), with
  ``--device cpu --jobs 0`` (one single-threaded worker per usable core, each decoding and
  tagging whole files) and ``--device cuda --jobs 0`` (the workers decode and compute the
  spectrograms, the GPU process runs musicnn over several row groups per call and the
  model). Speed: audio-hours tagged per hour of wall time.
* **Training**: ``instrec train --model M --epochs E`` for M in bilstm-att, att on an
  OpenMIC-sized synthetic dataset (``--clips`` clips x 10 frames x 128 features, 20 classes,
  two labelled per clip; 20,000 clips by default, as OpenMIC-2018), ``--device cpu`` (one
  thread, the default policy) and ``--device cuda``. Speeds: training clips x epochs / command
  wall time, and the epoch loop's clips/s from ``train_log.csv``.
* **An hour-long file**: the musicnn front end (``get_frontend("musicnn", device=...)``, in
  this process, once) on a ``--long-minutes`` synthetic 16 kHz signal (default 60): seconds of
  audio per second, and on the GPU the peak GPU memory (``torch.cuda.max_memory_allocated``),
  which must not grow with the file (row groups stream through); the CPU runs with one thread.
* **Agreement** (tolerances, not bits: other kernels round differently): per file and
  instrument, the largest |probability(GPU) - probability(CPU)| and the share of present flags
  that agree; per training run, the best validation macro F1 and the last epoch's training
  loss of the GPU run against the CPU run; the long signal's uint8 features, GPU against CPU.

The musicnn weights come from ``--weights-dir`` (else ``$INSTREC_WEIGHTS_DIR`` or
``~/.cache/instrec/weights``); a machine without network access needs them copied there.

Without a CUDA device (or with ``--device cpu``) the GPU rows are written with the reason they
were skipped and only the CPU is measured, so the script is exercised anywhere.
"""
from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import numpy as np  # noqa: E402

NAME = "bench_gpu"
MODELS = ("bilstm-att", "att")
TOLERANCE_P = 0.01       # largest |p_gpu - p_cpu| of a file-level probability
TOLERANCE_FLAGS = 0.99   # share of present flags that must agree
TOLERANCE_F1 = 0.02      # |best validation macro F1 (GPU) - (CPU)|
TOLERANCE_FEATURES = 0.99  # share of the long signal's uint8 features equal on GPU and CPU (the rest within 2)


#: What the measured commands import beside torch (a device machine without network access
#: must have them installed already).
NEEDS = ("numpy", "soundfile", "soxr", "safetensors", "threadpoolctl", "tqdm")


def missing_modules() -> list[str]:
    import importlib.util

    return [m for m in NEEDS if importlib.util.find_spec(m) is None]


def gpu_status(requested: str) -> tuple[str | None, str]:
    """(the CUDA device to measure or None, its name or why the GPU rows are skipped)."""
    import torch

    if requested == "cpu":
        return None, "skipped: --device cpu"
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        return None, f"skipped: torch {torch.__version__} ({build}) sees no CUDA device"
    return requested, torch.cuda.get_device_name(torch.device(requested))


def write_audio(folder: Path, n_files: int, seconds: float) -> float:
    """``n_files`` FLAC files of ``seconds`` s at 44.1 kHz stereo; returns the seconds of audio."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    sr = 44100
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n_files):
        rng = np.random.default_rng(i)
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.25 * t))
        mono = 0.2 * tone + 0.02 * rng.standard_normal(t.size)
        sf.write(folder / f"track{i:04d}.flac", np.stack([mono, np.roll(mono, 37)], axis=1).astype(np.float32), sr)
    return n_files * seconds


def read_tags(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(files, (N, C) probabilities, (N, C) present flags) of a ``predict`` CSV."""
    from instrec.tagging.formats import parse_csv

    _, rows = parse_csv(path.read_text())
    classes = [k[:-len("_present")] for k in rows[0] if k.endswith("_present")]
    probs = np.array([[float(r[c]) if r[c] else np.nan for c in classes] for r in rows])
    flags = np.array([[r[f"{c}_present"] == "1" for c in classes] for r in rows])
    return [r["file"] for r in rows], probs, flags


def tagging(work: Path, args, devices: dict[str, str | None], skipped: dict[str, str],
            repeats: int) -> tuple[list[dict], dict]:
    audio_seconds = write_audio(work / "audio", args.files, args.seconds)
    rows, tags = [], {}
    for label, device in devices.items():
        if device is None:
            rows.append({"measure": "tagging (musicnn, end to end)", "device": label, "status": skipped[label]})
            continue
        walls = []
        for r in range(repeats):
            out = work / f"tags-{label}-{r}.csv"
            res = C.run_child(C.instrec_argv("predict", str(work / "audio"), "--out", str(out), "--device", device,
                                             "--jobs", "0", "--overwrite", "-q")).check()
            walls.append(res.wall_s)
            tags[label] = out
        wall = C.median(walls)
        rows.append({"measure": "tagging (musicnn, end to end)", "device": label, "status": "measured",
                     "files": args.files, "audio_s": audio_seconds, "wall_s": wall,
                     "audio_h_per_h": audio_seconds / wall, "speed_vs_cpu": None})
    agreement = {}
    if "cpu" in tags and "gpu" in tags:
        files_c, p_c, f_c = read_tags(tags["cpu"])
        files_g, p_g, f_g = read_tags(tags["gpu"])
        assert files_c == files_g, "the two runs tagged different files"
        agreement = {"tagging_max_abs_dp": float(np.nanmax(np.abs(p_g - p_c))),
                     "tagging_flag_agreement": float((f_g == f_c).mean())}
        rows[-1]["speed_vs_cpu"] = rows[-1]["audio_h_per_h"] / rows[0]["audio_h_per_h"]
    return rows, agreement


def training(work: Path, args, devices: dict[str, str | None], skipped: dict[str, str],
             repeats: int) -> tuple[list[dict], dict]:
    data = C.synthetic_openmic(work / "openmic-sized", args.clips)
    rows, summaries = [], {}
    for model in MODELS:
        for label, device in devices.items():
            if device is None:
                rows.append({"measure": f"training {model}", "device": label, "status": skipped[label]})
                continue
            walls, loops, config = [], [], None
            for r in range(repeats):
                out = work / f"run-{model}-{label}-{r}"
                res = C.run_child(C.instrec_argv("train", "--data", str(data), "--out", str(out), "--model", model,
                                                 "--epochs", str(args.epochs), "--device", device, "--overwrite",
                                                 "-q")).check()
                config = json.loads((out / "config.json").read_text())
                with open(out / "train_log.csv", newline="") as fh:
                    log = list(csv.DictReader(fh))
                walls.append(res.wall_s)
                loops.append(sum(float(row["seconds"]) for row in log))
            clips = config["n_train"] * args.epochs
            summaries[(model, label)] = (config, log)
            rows.append({"measure": f"training {model}", "device": label, "status": "measured",
                         "recorded_device": config.get("device"), "clips_x_epochs": clips,
                         "wall_s": C.median(walls), "command_clips_per_s": clips / C.median(walls),
                         "loop_clips_per_s": clips / C.median(loops), "speed_vs_cpu": None})
            if label == "gpu" and (model, "cpu") in summaries:
                rows[-1]["speed_vs_cpu"] = rows[-1]["loop_clips_per_s"] / rows[-2]["loop_clips_per_s"]
    agreement = {}
    for model in MODELS:
        if (model, "cpu") in summaries and (model, "gpu") in summaries:
            (c_cfg, c_log), (g_cfg, g_log) = summaries[(model, "cpu")], summaries[(model, "gpu")]
            agreement[f"{model}_best_f1_diff"] = abs(g_cfg["best_val_macro_f1"] - c_cfg["best_val_macro_f1"])
            loss_gpu, loss_cpu = float(g_log[-1]["train_loss"]), float(c_log[-1]["train_loss"])
            agreement[f"{model}_last_loss_rel_diff"] = abs(loss_gpu / loss_cpu - 1)
    return rows, agreement


def long_signal(args, devices: dict[str, str | None], skipped: dict[str, str]) -> tuple[list[dict], dict]:
    """The musicnn front end once over a ``--long-minutes`` signal per device (see the docstring)."""
    import time

    import torch

    from bench_musicnn import synth
    from instrec.features.frontends import get_frontend
    from instrec.runinfo import set_threads

    measure = f"musicnn front end, {args.long_minutes:g}-min signal"
    audio = synth(args.long_minutes * 60.0)
    rows, feats = [], {}
    for label, device in devices.items():
        if device is None:
            rows.append({"measure": measure, "device": label, "status": skipped[label]})
            continue
        set_threads(1)
        fe = get_frontend("musicnn", weights_dir=args.weights_dir, device=device)
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        feats[label] = fe.features(audio, 16000)
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        rows.append({"measure": measure, "device": label, "status": "measured", "audio_s": len(audio) / 16000,
                     "wall_s": wall, "audio_h_per_h": len(audio) / 16000 / wall,
                     "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
                     "speed_vs_cpu": None})
        del fe
    agreement = {}
    if len(feats) == 2:
        diff = np.abs(feats["gpu"].astype(int) - feats["cpu"].astype(int))
        agreement = {"features_equal_share": float((diff == 0).mean()), "features_max_abs_diff": int(diff.max())}
        rows[-1]["speed_vs_cpu"] = rows[-1]["audio_h_per_h"] / rows[0]["audio_h_per_h"]
    return rows, agreement


def main() -> None:
    p = C.base_parser(__doc__.split("\n\n")[0], default_repeats=2)
    p.add_argument("--files", type=int, default=None, help="audio files tagged (default 128; 4 with --quick)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each file (default 30 s; 10 with --quick)")
    p.add_argument("--clips", type=int, default=None, help="clips of the training data (default 20000, as "
                   "OpenMIC-2018; 1000 with --quick)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 3; 1 with --quick)")
    p.add_argument("--long-minutes", type=float, default=None, help="length of the long signal (default 60; 1 with "
                   "--quick)")
    p.add_argument("--device", default="cuda", help="the GPU to measure (cuda, cuda:N) or cpu to skip it")
    p.add_argument("--weights-dir", default=None, help="folder of the converted musicnn weights")
    args = p.parse_args()
    missing = missing_modules()
    if missing:
        raise SystemExit(f"bench_gpu: install {', '.join(missing)} first (instrec's dependencies)")
    if args.quick:
        args.seconds = 10.0 if args.seconds == 30.0 else args.seconds
    args.files = args.files or (4 if args.quick else 128)
    args.clips = args.clips or (1000 if args.quick else 20000)
    args.epochs = args.epochs or (1 if args.quick else 3)
    args.long_minutes = args.long_minutes or (1.0 if args.quick else 60.0)
    if args.weights_dir:  # the predict commands read it too
        os.environ["INSTREC_WEIGHTS_DIR"] = str(Path(args.weights_dir).resolve())
    repeats = C.repeats_of(args, default=2) if not args.quick or args.repeats else 1
    gpu, gpu_text = gpu_status(args.device)
    devices, skipped = {"cpu": "cpu", "gpu": gpu}, {"gpu": gpu_text}
    machine = C.machine_info()
    machine["gpu"] = gpu_text
    with C.workdir(args, "instrec-bench-gpu-") as work:
        tag_rows, tag_agree = tagging(work, args, devices, skipped, repeats)
        train_rows, train_agree = training(work, args, devices, skipped, repeats)
    long_rows, long_agree = long_signal(args, devices, skipped)
    columns = ["measure", "device", "status", "recorded_device", "files", "audio_s", "clips_x_epochs", "wall_s",
               "audio_h_per_h", "command_clips_per_s", "loop_clips_per_s", "gpu_peak_mib", "speed_vs_cpu"]
    rows = tag_rows + train_rows + long_rows
    agreement = {**tag_agree, **train_agree, **long_agree}
    targets = []
    if tag_agree:
        targets += [C.target("tagging: largest |p(GPU) - p(CPU)|", tag_agree["tagging_max_abs_dp"], "<=", TOLERANCE_P),
                    C.target("tagging: present flags that agree", tag_agree["tagging_flag_agreement"], ">=",
                             TOLERANCE_FLAGS)]
    if long_agree:
        targets.append(C.target("long signal: musicnn features equal on GPU and CPU",
                                long_agree["features_equal_share"], ">=", TOLERANCE_FEATURES))
        targets.append(C.target("long signal: largest feature difference", long_agree["features_max_abs_diff"],
                                "<=", 2))
    for model in MODELS:
        if f"{model}_best_f1_diff" in agreement:
            targets.append(C.target(f"training {model}: |best val macro F1 (GPU) - (CPU)|",
                                    agreement[f"{model}_best_f1_diff"], "<=", TOLERANCE_F1))
    notes = [f"GPU: {gpu_text}", f"CPU: {machine['cpu_model']}, {machine['usable_cores']} usable cores; "
             f"load average at start {machine['load_average_at_start']} (a busy machine slows the CPU rows)",
             "Synthetic audio and an OpenMIC-shaped synthetic dataset, not OpenMIC itself."]
    config = {"files": args.files, "seconds": args.seconds, "clips": args.clips, "epochs": args.epochs,
              "long_minutes": args.long_minutes, "repeats": repeats, "device": args.device, "agreement": agreement}
    C.print_table("GPU against CPU", rows, columns)
    C.print_targets(targets)
    C.write_results(args.out, NAME, "GPU against CPU: tagging, training, agreement", args.quick, config,
                    [C.table("gpu", "GPU against CPU", rows, columns)], machine, targets, notes)


if __name__ == "__main__":
    main()

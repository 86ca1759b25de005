"""``--device``: one resolver; on the CPU ``auto`` is ``cpu`` bit for bit; a missing GPU is one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from instrec._io import InstrecError
from instrec.cli import main
from instrec.device import is_accelerator, resolve_device
from instrec.run import CONFIG_FILE, MODEL_FILE, read_config
from instrec.run_schema import check_run_config

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")


@pytest.fixture
def cpu_only(monkeypatch):
    """This machine as torch would see it without any accelerator."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("instrec.device.mps_available", lambda: False)


def test_auto_is_the_cpu_without_an_accelerator_and_a_gpu_when_there_is_one(cpu_only, monkeypatch):
    assert resolve_device("auto") == resolve_device(None) == resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)  # cuDNN's default
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    assert torch.backends.cudnn.allow_tf32 is False  # full float32 on the GPU, as on the CPU
    with pytest.raises(InstrecError, match=r"--device cuda:2: torch sees 2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("instrec.device.mps_available", lambda: True)
    assert resolve_device("auto") == "mps"
    assert not is_accelerator("cpu") and is_accelerator("cuda:1") and is_accelerator("mps")


def test_a_missing_or_unknown_device_is_one_clear_error(cpu_only):
    for name in ("cuda", "cuda:0"):
        with pytest.raises(InstrecError, match=rf"^--device {name}: torch .* sees no CUDA device; use --device cpu"):
            resolve_device(name)
    with pytest.raises(InstrecError, match="--device mps: torch .* has no usable Apple mps device"):
        resolve_device("mps")
    with pytest.raises(InstrecError, match=r"unknown device 'gpu'; choose one of auto, cpu, cuda, mps \(or cuda:N\)"):
        resolve_device("gpu")


def _command_lines(tmp_path, tiny_dataset, finished_run):
    """One command line per command with --device, and the output it must not create."""
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    return {
        "train": (["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "run")], tmp_path / "run"),
        "evaluate": (["evaluate", str(finished_run), "--out", str(tmp_path / "eval")], tmp_path / "eval"),
        "predict": (["predict", str(wav), "--run", str(finished_run), "--out", str(tmp_path / "t.csv")],
                    tmp_path / "t.csv"),
        "predict-dask": (["predict", str(wav), "--run", str(finished_run), "--engine", "dask", "--out",
                          str(tmp_path / "tags")], tmp_path / "tags"),
        "featurize": (["featurize", str(wav), "--out", str(tmp_path / "ds"), "--frontend", "logmel"], tmp_path / "ds"),
        "experiment": (["experiment", "--data", str(tiny_dataset), "--out", str(tmp_path / "exp"), "--grid", "smoke"],
                       tmp_path / "exp"),
    }


@no_cuda
@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "predict-dask", "featurize", "experiment"])
def test_device_cuda_without_cuda_stops_every_command_before_any_work(command, tmp_path, tiny_dataset,
                                                                     finished_run, capsys):
    argv, output = _command_lines(tmp_path, tiny_dataset, finished_run)[command]
    assert main([*argv, "--device", "cuda", "-q"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device cuda: torch" in err[0] and "sees no CUDA device" in err[0]
    assert not output.exists()


def test_an_unknown_device_is_refused_when_parsed(tiny_dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "r"), "--device", "tpu"])
    assert exc.value.code == 2 and "unknown device 'tpu'" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["bilstm-att", "att"])
def test_device_cpu_and_auto_train_the_same_bytes_and_record_the_device(model, tiny_dataset, tmp_path, cpu_only):
    from instrec.evaluation.evaluate import evaluate_run
    from instrec.training.config import TrainConfig
    from instrec.training.loop import train

    runs = {}
    for device in ("cpu", "auto"):
        out = tmp_path / device
        train(TrainConfig(data=str(tiny_dataset), out=str(out), model=model, epochs=2, seed=3, threads=1,
                          mixup=0.4, device=device), progress=False)
        runs[device] = out
        config = read_config(out)
        assert config["device"] == "cpu" and config["train"]["device"] == device
        assert evaluate_run(out, device=device)["device"] == "cpu"
    for name in (MODEL_FILE, "last.safetensors", "train_log.csv", "predictions.npz"):
        if name == "train_log.csv":  # the seconds column differs; the numbers must not
            a, b = ((runs[d] / name).read_text().splitlines() for d in ("cpu", "auto"))
            assert [r.rsplit(",", 1)[0] for r in a] == [r.rsplit(",", 1)[0] for r in b]
        else:
            assert (runs["cpu"] / name).read_bytes() == (runs["auto"] / name).read_bytes(), name


def test_a_run_may_resume_on_another_device_and_older_configs_stay_valid(tiny_dataset, tmp_path, cpu_only):
    from instrec.training.config import TrainConfig
    from instrec.training.loop import train

    out = tmp_path / "run"
    train(TrainConfig(data=str(tiny_dataset), out=str(out), model="fc-t", epochs=1, seed=0, threads=1,
                      device="cpu"), progress=False)
    summary = train(TrainConfig(data=str(tiny_dataset), out=str(out), model="fc-t", epochs=2, seed=0, threads=1,
                                device="auto"), resume=True, progress=False)
    assert summary["epochs_run"] == 2 and summary["train"]["device"] == "auto"
    config = json.loads((out / CONFIG_FILE).read_text())
    del config["device"], config["train"]["device"]  # as written before --device existed
    check_run_config(config, out / CONFIG_FILE)
    with pytest.raises(InstrecError, match="field 'device' must be a device name"):
        check_run_config({**config, "device": 0}, out / CONFIG_FILE)


def test_lockstep_members_record_the_device(tiny_dataset, tmp_path, cpu_only):
    from instrec.training.config import TrainConfig
    from instrec.training.lockstep import train_lockstep

    cfgs = [TrainConfig(data=str(tiny_dataset), out=str(tmp_path / f"m{s}"), model="bilstm-att", epochs=1, seed=s,
                        threads=1, device="auto") for s in (0, 1)]
    for summary in train_lockstep(cfgs, progress=False):
        assert summary["device"] == "cpu" and summary["training_engine"]["engine"] == "lockstep"


def test_dask_workers_resolve_the_device_themselves(finished_run, tmp_path, cpu_only):
    pytest.importorskip("pyarrow")
    import dataclasses
    from concurrent.futures import ThreadPoolExecutor

    from instrec.tagging import catalogue as cat

    wav = tmp_path / "a.wav"
    sf.write(wav, 0.3 * np.sin(np.arange(48000) / 16000 * 2 * np.pi * 440).astype(np.float32), 16000)
    job = cat.BatchJob(str(finished_run), str(tmp_path / "out"), False, (), 1, "auto")
    assert cat._worker_tagger(job).device == "cpu"
    with pytest.raises(InstrecError, match=r"^--device cuda: torch .* sees no CUDA device"):
        cat.tag_batch(dataclasses.replace(job, device="cuda"), [str(wav)])
    # A cluster elsewhere (an executor): the client does not judge the workers' machines; their error comes back.
    with ThreadPoolExecutor(1) as pool, pytest.raises(InstrecError, match="sees no CUDA device"):
        cat.tag_catalogue(finished_run, [wav], tmp_path / "tags", executor=pool, device="cuda")
    report = cat.tag_catalogue(finished_run, [wav], tmp_path / "tags2", executor=ThreadPoolExecutor(1), device="cpu")
    assert report.files_tagged == 1 and not report.failed


def test_the_gpu_training_loop_run_on_the_cpu_gives_the_cpu_loop_bytes(tiny_dataset, tmp_path, monkeypatch):
    """The accelerator's branch of the loop (batches copied, the loss summed on the device)
    taken with the CPU as its device: the same arithmetic, so the same files."""
    from instrec.training import loop
    from instrec.training.config import TrainConfig

    def run(out):
        loop.train(TrainConfig(data=str(tiny_dataset), out=str(out), model="bilstm-att", epochs=2, seed=5, threads=1,
                               concat=0.5, device="cpu"), progress=False)
        return out

    plain = run(tmp_path / "plain")
    monkeypatch.setattr(loop, "is_accelerator", lambda device: True)
    fed = run(tmp_path / "fed")
    assert (plain / MODEL_FILE).read_bytes() == (fed / MODEL_FILE).read_bytes()
    losses = [[r.split(",")[1] for r in (d / "train_log.csv").read_text().splitlines()[1:]] for d in (plain, fed)]
    assert losses[0] == losses[1] and len(losses[0]) == 2


def test_device_cpu_and_auto_tag_and_featurize_the_same_bytes(finished_run, tmp_path, cpu_only):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i, secs in enumerate([4.0, 11.0]):
        t = np.arange(int(secs * 22050)) / 22050
        sf.write(audio / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t)).astype(np.float32), 22050)
    for device in ("cpu", "auto"):
        assert main(["predict", str(audio), "--run", str(finished_run), "--per-second", "--format", "json",
                     "--out", str(tmp_path / f"tags-{device}.json"), "--device", device, "-q"]) == 0
        assert main(["featurize", str(audio), "--out", str(tmp_path / f"ds-{device}"), "--frontend", "logmel",
                     "--device", device, "-q"]) == 0
    assert (tmp_path / "tags-cpu.json").read_bytes() == (tmp_path / "tags-auto.json").read_bytes()
    for name in ("openmic-2018.npz", "featurize-notes.csv"):
        assert (tmp_path / "ds-cpu" / name).read_bytes() == (tmp_path / "ds-auto" / name).read_bytes()

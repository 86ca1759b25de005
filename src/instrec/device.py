"""Where torch work runs: ``--device auto|cpu|cuda|mps`` resolved once, here.

* ``auto``: the first CUDA device when torch sees one, else Apple's ``mps`` when torch has
  it, else the CPU. On a machine without an accelerator ``auto`` *is* ``cpu``: the same code
  path, so every result is bit-identical to ``--device cpu``.
* ``cuda`` (or ``cuda:N``) and ``mps`` are checked before any work: without them the command
  stops with one line naming what torch sees (:class:`~instrec._io.InstrecError`).

What moves to the device: the models (training, validation, evaluation, tagging) and the
networks of the ``musicnn`` and ``vggish`` front ends. What stays on the CPU: decoding,
resampling, spectrograms and dropout masks (drawn from numpy streams, then copied), the
random draws of batch order and augmentation (the run's CPU generator, so the draws are the
same on every device), thresholds and metrics. GPU results equal CPU results only up to float
rounding (other kernels); the resolved device is recorded with a run (``config.json``) and
in ``benchmarks/bench_gpu.py``'s tolerances.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from instrec._io import InstrecError

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions: the command line reads DEVICE_CHOICES at start-up.

#: The values ``--device`` accepts (``cuda:N`` too).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DEVICE_METAVAR = "auto|cpu|cuda|mps"
DEVICE_HELP = ("where models and front-end networks run: auto = a CUDA GPU when torch sees one, else Apple mps, "
               "else the CPU; cpu; cuda (or cuda:N); mps. Decoding stays on the CPU")


def mps_available() -> bool:
    """Whether this torch build has a usable Apple Metal (``mps``) device."""
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def check_device_name(name: str) -> None:
    """Raise InstrecError unless ``name`` is one of :data:`DEVICE_CHOICES` or ``cuda:N``."""
    if not isinstance(name, str) or not (name in DEVICE_CHOICES or re.fullmatch(r"cuda:\d+", name)):
        raise InstrecError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def resolve_device(name: str | None = "auto") -> str:
    """The device ``name`` means on this machine, as torch spells it (``"cpu"``, ``"cuda"``,
    ``"cuda:1"``, ``"mps"``); None is ``auto``. A device that is not there is an error."""
    import torch

    name = "auto" if name is None else name
    check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return _full_float32("cuda")
        return "mps" if mps_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise InstrecError(f"--device {name}: torch {torch.__version__} ({built}) sees no CUDA device; "
                               "use --device cpu or auto")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise InstrecError(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA device(s) "
                               f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
        return _full_float32(name)
    if name == "mps" and not mps_available():
        raise InstrecError(f"--device mps: torch {torch.__version__} has no usable Apple mps device here; "
                           "use --device cpu or auto")
    return name


def _full_float32(device: str) -> str:
    """Full float32 arithmetic on a CUDA device (returned): cuDNN convolutions default to TF32,
    which rounds their inputs to 10-bit mantissas, far coarser than the CPU's float32 and
    enough to move musicnn's and VGGish's quantised features; matrix products likewise."""
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return device


def is_accelerator(device: "str | torch.device") -> bool:
    """Whether ``device`` is not the CPU (the code paths that batch for a GPU)."""
    import torch

    return torch.device(device).type != "cpu"


def device_name(device: str) -> str:
    """A human-readable name of a resolved device for records (e.g. the GPU's model)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return device


def module_device(module: "torch.nn.Module") -> "torch.device":
    """The device of ``module``'s first parameter or buffer (the CPU if it has neither)."""
    import torch

    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")

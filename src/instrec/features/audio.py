"""Audio decoding: wav, flac, ogg and mp3 through soundfile (libsndfile, no ffmpeg).

Every reader mixes the channels to mono (mean over channels) and resamples with
soxr (quality ``HQ``). :func:`stream_audio` reads the file in blocks so memory
stays bounded for hour-long recordings; :func:`load_audio` is the concatenation
of those blocks, so the two are bit-identical by construction (soxr's streaming
resampler does not depend on how the input is chunked).

Input problems raise :class:`~instrec._io.InstrecError` with one line naming the
file: a missing or empty file, undecodable or truncated data, no channels, no
samples, NaN/Inf samples.
"""
from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterable, Iterator, NamedTuple

import numpy as np
import soundfile as sf
import soxr

from instrec._io import InstrecError


class AudioWarning(UserWarning):
    """Audio that can still be processed but deserves a look (silent, very short)."""


class AudioInfo(NamedTuple):
    """What a file's header says about it (``frames`` may be approximate for mp3)."""

    path: str
    duration: float  # seconds
    samplerate: int  # Hz
    channels: int
    frames: int  # samples per channel
    format: str  # e.g. "WAV", "FLAC", "OGG", "MP3"
    subtype: str  # e.g. "PCM_16", "VORBIS"


#: Shortfall, as a fraction of the header's frame count, beyond which a file counts as
#: truncated. libsndfile's counts are exact for wav/flac/ogg; for mp3 they are estimates
#: (e.g. without a Xing header), hence the wide margin there.
_TRUNCATION_TOLERANCE = {"MP3": 0.10}
_DEFAULT_TRUNCATION_TOLERANCE = 0.01
_TRUNCATION_SLACK_FRAMES = 4096


def _check_path(path: Path) -> None:
    """Refuse what is not a readable, non-empty file, naming the real reason (a permission, not
    "not decodable audio"). :func:`expand_inputs` lists a folder it could not search as an
    input, so that the folder is reported here like a bad file, not skipped silently."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InstrecError(f"{path}: audio file not found") from None
    except OSError as exc:
        raise InstrecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        try:
            os.listdir(path)
        except OSError as exc:
            raise InstrecError(f"{path}: folder cannot be searched ({exc.strerror or exc}); the audio files in "
                               "it were not tagged") from None
        raise InstrecError(f"{path}: is a folder, not an audio file")
    try:
        os.close(os.open(path, os.O_RDONLY))
    except OSError as exc:
        raise InstrecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if st.st_size == 0:
        raise InstrecError(f"{path}: audio file is empty (0 bytes)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _open(path: Path):
    _check_path(path)
    try:
        return sf.SoundFile(os.fsencode(path))  # bytes: a name that is not valid UTF-8 opens too
    except (RuntimeError, TypeError, ValueError) as exc:  # LibsndfileError is a RuntimeError
        reason = _first_line(exc)
        if "possibly a pipe" in reason or "unknown format" in reason.lower():
            # libsndfile's words for "no decoder recognised the bytes" (the path is a regular file)
            reason = "no supported audio format recognised in its bytes"
        raise InstrecError(f"{path}: not decodable audio ({reason})") from None


#: libsndfile log lines that mean the data ends early: an Ogg stream cut inside or after a
#: page (its last granule position then gives a shorter, self-consistent length).
_OGG_TRUNCATION = ("ended unexpectedly", "lacks an end-of-stream", "Junk after the last page")


def _header_says_truncated(extra_info: str) -> bool:
    """libsndfile's log notices a wav or aiff data chunk longer than the file, or an ogg
    stream that ends without its end-of-stream page."""
    if any(marker in extra_info for marker in _OGG_TRUNCATION):
        return True
    # wav's "data" chunk; aiff's "SSND" chunk (its "COMM" frame count is then replaced by what fits).
    for match in re.finditer(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", extra_info, re.MULTILINE):
        declared, actual = int(match.group(1)), int(match.group(2))
        # 0 and 0xFFFFFFFF are the "length unknown" markers streaming writers use.
        if 0 < declared < 0xFFFFFF00 and actual < declared:
            return True
    return False


def _mp3_missing_bytes(path: Path) -> int:
    """Bytes an mp3 stream lacks according to its Xing/Info (LAME) header, 0 when complete or
    when the file has no such header. The header counts the stream's bytes from its own frame."""
    with open(path, "rb") as fh:
        head = fh.read(16384)
        size = os.fstat(fh.fileno()).st_size
    start = 0
    if head[:3] == b"ID3" and len(head) >= 10:  # skip an ID3v2 tag (synchsafe size)
        start = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F))
        with open(path, "rb") as fh:
            fh.seek(start)
            head = fh.read(16384)
    for tag in (b"Xing", b"Info"):
        at = head.find(tag, 0, 200)
        if at < 0 or len(head) < at + 16:
            continue
        flags = int.from_bytes(head[at + 4:at + 8], "big")
        if not flags & 0x2:
            return 0
        offset = at + 8 + (4 if flags & 0x1 else 0)
        declared = int.from_bytes(head[offset:offset + 4], "big")
        return max(0, declared - (size - start))
    return 0


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header information of an audio file (no decoding). Raises InstrecError like the readers."""
    path = Path(path)
    with _open(path) as f:
        if f.channels < 1:
            raise InstrecError(f"{path}: audio file has no channels")
        sr = int(f.samplerate)
        frames = int(f.frames)
        return AudioInfo(os.fspath(path), frames / sr if sr > 0 else 0.0, sr, int(f.channels), frames,
                         str(f.format), str(f.subtype))


def stream_audio(path: str | os.PathLike, sr: int, block_seconds: float = 60.0) -> Iterator[np.ndarray]:
    """Yield the file as mono float32 blocks at ``sr`` Hz, about ``block_seconds`` of input each.

    Memory is bounded by one block whatever the file length. Concatenating the
    blocks gives exactly :func:`load_audio`'s result. Errors are raised when the
    generator reaches them (the header is checked on the first ``next``).
    """
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if block_seconds <= 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds}")

    path = Path(path)
    with _open(path) as f:
        if f.channels < 1:
            raise InstrecError(f"{path}: audio file has no channels")
        native_sr = int(f.samplerate)
        if native_sr <= 0:
            raise InstrecError(f"{path}: invalid sample rate {native_sr} in the header")
        if _header_says_truncated(f.extra_info):
            raise InstrecError(f"{path}: audio file is truncated (the header promises more data than the file holds)")
        if str(f.format) == "MP3" and (missing := _mp3_missing_bytes(path)):
            raise InstrecError(f"{path}: audio file is truncated (its Xing header counts {missing} bytes more "
                               "than the file holds)")
        declared = int(f.frames)
        tolerance = _TRUNCATION_TOLERANCE.get(str(f.format), _DEFAULT_TRUNCATION_TOLERANCE)
        block_frames = max(1, int(round(block_seconds * native_sr)))
        resampler = None
        if native_sr != sr:
            resampler = soxr.ResampleStream(native_sr, sr, 1, dtype="float32", quality="HQ")
        n_read = 0
        while True:
            try:
                block = f.read(block_frames, dtype="float32", always_2d=True)
            except (RuntimeError, ValueError) as exc:
                raise InstrecError(
                    f"{path}: decoding failed after {n_read / native_sr:.2f} s ({_first_line(exc)}); "
                    "the file is probably truncated or corrupt") from None
            if len(block) == 0:
                break
            if not np.isfinite(block).all():
                raise InstrecError(f"{path}: audio contains NaN or Inf samples near {n_read / native_sr:.2f} s")
            n_read += len(block)
            mono = _mix_channels(block)
            out = resampler.resample_chunk(mono) if resampler is not None else mono
            if out.size:
                yield np.ascontiguousarray(out, dtype=np.float32)
        if n_read == 0:
            raise InstrecError(f"{path}: audio file contains no samples (0 frames)")
        if n_read < declared * (1.0 - tolerance) - _TRUNCATION_SLACK_FRAMES:
            raise InstrecError(
                f"{path}: audio file is truncated (decoded {n_read / native_sr:.2f} s of the "
                f"{declared / native_sr:.2f} s its header declares)")
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            if tail.size:
                yield np.ascontiguousarray(tail, dtype=np.float32)


def _mix_channels(block: np.ndarray) -> np.ndarray:
    """(n, channels) float32 -> (n,) float32 channel mean (summed column by column: numpy's
    ``mean(axis=1)`` over a short axis is ~20x slower)."""
    if block.shape[1] == 1:
        return block[:, 0]
    mono = block[:, 0].copy()
    for c in range(1, block.shape[1]):
        mono += block[:, c]
    mono /= np.float32(block.shape[1])
    return mono


def load_audio(path: str | os.PathLike, sr: int, block_seconds: float = 60.0) -> np.ndarray:
    """The whole file as a mono float32 array of shape (n,) at ``sr`` Hz."""
    blocks = list(stream_audio(path, sr, block_seconds=block_seconds))
    if not blocks:  # a file so short that resampling leaves no sample
        return np.zeros(0, dtype=np.float32)
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def to_mono(audio: np.ndarray, source: str = "<array>") -> np.ndarray:
    """(n,) or (n, channels) samples -> contiguous mono float32 (n,); channels averaged.

    Integer samples are converted as they are (no scaling): the front ends
    peak-normalise, so the scale does not matter there.
    """
    x = np.asarray(audio)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise InstrecError(f"{source}: audio samples must be numbers, got dtype {x.dtype}")
    if x.ndim == 2:
        if x.shape[1] < 1:
            raise InstrecError(f"{source}: audio array has no channels")
        x = _mix_channels(x.astype(np.float32, copy=False))
    elif x.ndim != 1:
        raise InstrecError(f"{source}: audio must have shape (n,) or (n, channels), got {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample mono float32 audio with soxr HQ (the same filter the file readers use)."""
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    if sr_in == sr_out:
        return audio

    return np.ascontiguousarray(soxr.resample(audio, sr_in, sr_out, quality="HQ"), dtype=np.float32)


class DecodedBlocks:
    """Pass 1's decoded blocks, kept for pass 2 (a context manager that removes what it kept).

    Up to ``limit`` samples stay in memory; beyond that, when ``spill`` is true, all of them
    go to an unnamed temporary file in ``$TMPDIR`` (230 MB per hour at 16 kHz; reading it
    back costs about a hundredth of decoding again), so memory stays at one block whatever
    the file length. If the file cannot be written (a full disk), nothing is kept and
    :meth:`replay` returns None: the caller decodes again.
    """

    def __init__(self, limit: int, spill: bool = True) -> None:
        self.limit, self.spill = limit, spill
        self.blocks: list[np.ndarray] | None = []
        self.n = 0
        self.file: IO[bytes] | None = None

    def add(self, block: np.ndarray) -> None:
        """Keep (n,) float32 ``block``."""
        if self.blocks is None:
            return
        if self.file is None and self.n + len(block) <= self.limit:
            self.blocks.append(block)
            self.n += len(block)
            return
        if self.file is None and not self.spill:
            self.blocks = None
            return
        try:
            if self.file is None:
                self.file = tempfile.TemporaryFile(prefix="instrec-audio-")
                for kept in self.blocks:
                    kept.tofile(self.file)
                self.blocks = []
            np.ascontiguousarray(block, dtype=np.float32).tofile(self.file)
        except OSError:
            self.close()
            self.blocks = None

    def replay(self, block_samples: int) -> Iterable[np.ndarray] | None:
        """The kept samples as blocks (of ``block_samples`` when read back from the file),
        or None when they could not be kept."""
        if self.blocks is None or self.file is None:
            return self.blocks
        return self._read(block_samples)

    def _read(self, block_samples: int) -> Iterable[np.ndarray]:
        self.file.seek(0)
        while (block := np.fromfile(self.file, dtype=np.float32, count=block_samples)).size:
            yield block

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def __enter__(self) -> "DecodedBlocks":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: File name endings taken as audio when a folder is searched.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given plus audio files found (recursively, sorted) in given folders. A folder
    that cannot be searched (a permission) is listed itself, so that the command reports it
    with the files that failed instead of skipping it silently."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found: list[Path] = []
            unreadable: list[Path] = []
            for folder, dirs, files in os.walk(p, onerror=lambda exc: unreadable.append(Path(exc.filename))):
                dirs.sort()
                found.extend(q for q in (Path(folder) / f for f in files)
                             if q.suffix.lower() in AUDIO_SUFFIXES and q.is_file())
            paths.extend(sorted(found + unreadable))
        else:
            paths.append(p)
    return paths

"""Several SoundFonts at once: finding the installed ones and choosing one per part.

The realistic recipe renders each part of a clip with its own, seeded choice of font, so
one clip may hold a FluidR3 violin and a MuseScore piano. A class is renderable when any
font of the set has a preset for one of its voices (:mod:`~instrec.synth.gm`); a part
only ever draws among the fonts that really hold a preset of its class, because the
synthesiser would silently play a bank-0 fallback otherwise.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from instrec._io import InstrecError
from instrec.synth.gm import Voice, available_voices, renderable_classes
from instrec.synth.soundfont import SoundFont, default_soundfont_path, load_soundfont

#: Where Debian/Ubuntu packages install General MIDI SoundFonts (fluid-soundfont-gm,
#: musescore-general-soundfont-lossless, timgm6mb-soundfont, csound-soundfont), in the
#: order ``auto`` lists them; pretty_midi's bundled TimGM6mb comes last.
KNOWN_FONTS: tuple[str, ...] = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/MuseScore_General_Full.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/sf_GMbank.sf2",
)
AUTO = "auto"

FontSpec = str | os.PathLike | None


def find_soundfonts(known: Sequence[str] = KNOWN_FONTS) -> list[Path]:
    """Every installed font among ``known`` plus pretty_midi's bundled TimGM6mb, in that order."""
    found = [Path(p) for p in known if Path(p).is_file()]
    return found + [default_soundfont_path()]


def resolve_specs(specs: Sequence[FontSpec]) -> list[Path | None]:
    """Expand ``auto`` entries (see :func:`find_soundfonts`); other entries stay as given
    (``None`` = pretty_midi's TimGM6mb). Order is kept, repeated paths are dropped."""
    out: list[Path | None] = []
    for spec in specs:
        paths = find_soundfonts() if isinstance(spec, str) and spec == AUTO else [None if spec is None else Path(spec)]
        for p in paths:
            key = None if p is None else p.expanduser().resolve()
            if key not in out:
                out.append(key)
    return out


@dataclass(frozen=True)
class FontSet:
    """The SoundFonts of a corpus, each loaded once; files with the same bytes count once."""

    fonts: tuple[SoundFont, ...]

    @classmethod
    def load(cls, specs: Sequence[FontSpec]) -> FontSet:
        """Load every font of ``specs`` (paths, ``None`` or ``auto``); raises InstrecError."""
        fonts: list[SoundFont] = []
        for spec in resolve_specs(specs):
            sf = load_soundfont(spec)
            if all(f.sha256 != sf.sha256 for f in fonts):
                fonts.append(sf)
        if not fonts:
            raise InstrecError("--soundfont: no SoundFont given")
        return cls(tuple(fonts))

    @property
    def paths(self) -> tuple[str, ...]:
        """Absolute paths of the fonts, in set order (what workers load by)."""
        return tuple(str(f.path) for f in self.fonts)

    @cached_property
    def renderable(self) -> tuple[str, ...]:
        """OpenMIC classes (OpenMIC order) that at least one font can play."""
        return renderable_classes(frozenset().union(*(f.preset_keys for f in self.fonts)))

    def fonts_for(self, cls: str, names: Sequence[str] = ()) -> list[int]:
        """Indices of the fonts holding a voice of ``cls``; those holding one of the voice
        ``names`` when any does (an ensemble member asking for, say, a Jazz Kit)."""
        having = [i for i, f in enumerate(self.fonts) if available_voices(cls, f.preset_keys)]
        preferred = [i for i in having if any(v.name in names for v in available_voices(cls, self.fonts[i].preset_keys))]
        return preferred or having

    def pick(self, rng: np.random.Generator, cls: str, names: Sequence[str] = ()) -> tuple[int, Voice]:
        """Draw a font (uniformly among those that can play ``cls``) and then one of its
        voices of ``cls`` (by voice weight, preferring ``names``): ``(font index, voice)``."""
        idx = self.fonts_for(cls, names)
        if not idx:
            raise ValueError(f"no SoundFont of the set plays {cls!r}")
        font = idx[int(rng.integers(len(idx)))]
        voices = available_voices(cls, self.fonts[font].preset_keys)
        pool = [v for v in voices if v.name in names] or list(voices)
        w = np.array([v.weight for v in pool])
        return font, pool[int(rng.choice(len(pool), p=w / w.sum()))]

    def describe(self) -> list[dict]:
        """Per font: path, sha256, size in bytes and renderable classes (for corpus-stats.json)."""
        return [{"path": str(f.path), "sha256": f.sha256, "bytes": len(f.data),
                 "renderable_classes": list(renderable_classes(f.preset_keys))} for f in self.fonts]

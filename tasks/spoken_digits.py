"""`spoken_digits`: recognise a spoken digit word ("zero" .. "nine") from its log-mel spectrogram (audio).

Probes classification of a continuous, variable-timing signal: the model must find the word wherever it lies in
the clip and whatever the voice, rate and pitch. A small synthetic cousin of the Free Spoken Digit Dataset and of
keyword spotting (Speech Commands, Warden, 2018, https://arxiv.org/abs/1804.03209); the transformer sees a
sequence of log-mel frames as the Audio Spectrogram Transformer does (Gong et al., 2021,
https://arxiv.org/abs/2104.01778), one frame per token rather than 2-D patches.

Audio: each word is synthesised by the espeak-ng speech synthesiser (a system program: `apt-get install
espeak-ng`) for every *setting*, a combination of voice (`task.voices`), voice variant (`task.variants`, e.g. m3,
f2), speed in words per minute (`task.speeds`) and pitch 0-99 (`task.pitches`). A *speaker* is a voice with a
variant (the voice sets the accent, the variant the timbre). The speakers are partitioned once, by a fixed
permutation, into test (20%), val (10%) and train (the rest), each split taking every speed and pitch of its
speakers: no val or test speaker is ever heard in training (speaker-independent evaluation, as in spoken digit
benchmarks), though its accent occurs there with other timbres and vice versa. So a model is scored on
unseen speakers, not on recalling the training waveforms.

An example draws a setting of its split and a word (words are balanced exactly), then, in torch, from the
split's seeded generator: a time shift (the word, trimmed of silence, is placed at a random offset in a canvas of
`frames` x 20 ms, or randomly cropped where it is longer) and white noise at a random signal-to-noise ratio
between `snr_db` and `snr_db + 20` dB, at 11.025 kHz (espeak-ng's 22.05 kHz output, pairs of samples averaged).
Features, in torch only: a 512-point STFT (46 ms Hann window, hop 20 ms), power, a triangular mel filterbank
(`mel_filterbank`, HTK mel scale, 50 Hz - 5 kHz) and log, cropped to `frames` frames and standardised per
example (zero mean, unit variance), so input_dim = n_mels.

Synthesis costs about 50 ms a clip, so each clip's waveform (16-bit, silence trimmed) is cached under
`tasks.base.cache_dir()/spoken_digits/`, in a file named by the espeak-ng version and the clip's synthesis
parameters; only the clips an example draws are synthesised. The first full run synthesises every training
setting (10 words each, in parallel subprocesses); later runs only read files.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from pathlib import Path

import torch

from models.errors import ConfigError
from tasks.base import TASKS, Split, Task, cache_dir, positive_int, split_generator

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SYNTH_RATE = 22050         # espeak-ng's native rate: cached clips are kept at it (others are resampled to it)
SAMPLE_RATE = SYNTH_RATE // 2  # features are computed at 11.025 kHz (pairs of samples averaged): 2x less work
HOP = 220                  # 20 ms
N_FFT = 512                # 46 ms
F_MIN, F_MAX = 50.0, 5000.0
_SPLIT_SEED = 18040320     # fixes which settings are train, val and test, independent of run seeds
_FRACTIONS = {"test": 0.2, "val": 0.1}
_CHUNK = 512               # examples featurised at once (bounds memory)
INSTALL = "task spoken_digits needs espeak-ng: apt-get install espeak-ng"


# --- features ---------------------------------------------------------------------------------------------------

def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE, f_min: float = F_MIN,
                   f_max: float = F_MAX) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters, centres equally spaced on the HTK mel scale; filter k rises
    linearly from edge k to 1 at centre k + 1 and falls back to 0 at edge k + 2 (in Hz, per STFT bin)."""
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(torch.tensor(f_min))), float(hz_to_mel(torch.tensor(f_max))),
                                     n_mels + 2, dtype=torch.float64))
    freqs = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - low) / (centre - low)
    falling = (high - freqs[None, :]) / (high - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def log_mel(waves: torch.Tensor, n_mels: int, frames: int) -> torch.Tensor:
    """(n, samples) waveforms -> (n, frames, n_mels) log-mel features, standardised per example."""
    spectrum = torch.stft(waves, n_fft=N_FFT, hop_length=HOP, window=torch.hann_window(N_FFT), center=True,
                          return_complex=True)  # (n, freqs, time)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    mel = torch.einsum("mf,nft->ntm", mel_filterbank(n_mels), power)[:, :frames]
    features = torch.log(mel + 1e-10)
    mean = features.mean(dim=(1, 2), keepdim=True)
    std = features.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
    return (features - mean) / std


# --- synthesis --------------------------------------------------------------------------------------------------

def _espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise ConfigError(INSTALL)
    return path


@lru_cache(maxsize=4)
def _espeak_facts(executable: str) -> tuple[str, frozenset[str], frozenset[str]]:
    """espeak-ng's version and the voice and variant names it accepts."""
    def run(*args: str) -> str:
        return subprocess.run([executable, *args], capture_output=True, text=True, check=True).stdout

    found = re.search(r"(\d+(?:\.\d+)+)", run("--version"))
    version = found.group(1) if found else "unknown"
    voices, variants = set(), set()
    for line in run("--voices").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            voices.update({fields[1], fields[3], fields[4]})  # language, voice name, voice file
    for line in run("--voices=variant").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5 and fields[4].startswith("!v/"):
            variants.add(fields[4][3:])
    return version, frozenset(voices), frozenset(variants)


def read_wav(path: Path) -> torch.Tensor:
    """A 16-bit PCM WAV file (first channel) as int16 samples at SYNTH_RATE."""
    with wave.open(str(path), "rb") as file:
        channels, width, rate = file.getnchannels(), file.getsampwidth(), file.getframerate()
        raw = file.readframes(file.getnframes())
    if width != 2:
        raise ConfigError(f"espeak-ng wrote {8 * width}-bit audio to {path}; spoken_digits reads 16-bit PCM")
    samples = torch.frombuffer(bytearray(raw), dtype=torch.int16).reshape(-1, channels)[:, 0]
    if rate != SYNTH_RATE and len(samples) > 1:
        size = max(1, round(len(samples) * SYNTH_RATE / rate))
        resampled = torch.nn.functional.interpolate(samples.float()[None, None], size=size, mode="linear",
                                                    align_corners=False)[0, 0]
        samples = resampled.round().clamp(-32768, 32767).to(torch.int16)
    return samples


def decimate(samples: torch.Tensor) -> torch.Tensor:
    """int16 samples at SYNTH_RATE -> float samples in [-1, 1] at SAMPLE_RATE (the mean of each pair: a simple
    low-pass before halving the rate; espeak-ng's speech has little energy above 5 kHz)."""
    x = samples.float() / 32768.0
    if len(x) % 2:
        x = torch.cat([x, x.new_zeros(1)])
    return x.view(-1, 2).mean(1)


def trim(samples: torch.Tensor, threshold: float = 0.02, margin: int = SYNTH_RATE // 100) -> torch.Tensor:
    """Cut leading and trailing silence (below `threshold` of the peak), keeping `margin` samples either side."""
    loud = (samples.float().abs() > threshold * samples.float().abs().max().clamp_min(1.0)).nonzero()
    if len(loud) == 0:
        return samples
    start, end = max(0, int(loud[0]) - margin), min(len(samples), int(loud[-1]) + 1 + margin)
    return samples[start:end].clone()


@dataclass(frozen=True, order=True)
class Setting:
    voice: str
    variant: str  # "" = the voice's default
    speed: int    # words per minute
    pitch: int    # 0..99

    @property
    def voice_arg(self) -> str:
        return f"{self.voice}+{self.variant}" if self.variant else self.voice

    def file_name(self, word: str, version: str) -> str:
        voice = re.sub(r"[^A-Za-z0-9_.+-]", "_", self.voice_arg)
        return f"espeak-ng-{version}_{voice}_s{self.speed}_p{self.pitch}_{word}.pt"


def synthesise(executable: str, setting: Setting, word: str) -> torch.Tensor:
    """One word by espeak-ng (a subprocess with a list of arguments, no shell), silence trimmed, int16."""
    with tempfile.TemporaryDirectory(prefix="spoken_digits_") as tmp:
        out = Path(tmp) / "out.wav"
        args = [executable, "-w", str(out), "-v", setting.voice_arg, "-s", str(setting.speed),
                "-p", str(setting.pitch), word]
        done = subprocess.run(args, capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            message = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
            raise ConfigError(f"espeak-ng failed for voice {setting.voice_arg!r}, word {word!r}: {message}")
        return trim(read_wav(out))


def load_clips(keys: list[tuple[Setting, str]]) -> dict[tuple[Setting, str], torch.Tensor]:
    """The int16 waveform of each (setting, word), read from the cache or synthesised (in parallel) and cached."""
    executable = _espeak()
    version = _espeak_facts(executable)[0]
    folder = cache_dir() / "spoken_digits"
    folder.mkdir(parents=True, exist_ok=True)
    clips, missing = {}, []
    for key in keys:
        path = folder / key[0].file_name(key[1], version)
        if path.is_file():
            clips[key] = torch.load(path, weights_only=True)
        else:
            missing.append((key, path))

    def make(item):
        (setting, word), path = item
        samples = synthesise(executable, setting, word)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save(samples, partial)
        os.replace(partial, path)  # atomic: a concurrent reader sees the whole file or none
        return samples

    if missing:
        with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
            for (key, _), samples in zip(missing, pool.map(make, missing)):
                clips[key] = samples
    return clips


def _names(text: str, key: str, allow_empty: bool = False) -> list[str]:
    if not isinstance(text, str):
        raise ConfigError(f"task.{key} of task spoken_digits must be a comma-separated string, got {text!r}")
    names = [part.strip() for part in text.split(",")]
    if allow_empty and names == [""]:
        return [""]
    if any(not name for name in names):
        raise ConfigError(f"task.{key}={text!r} of task spoken_digits has an empty entry")
    if len(set(names)) != len(names):
        raise ConfigError(f"task.{key}={text!r} of task spoken_digits repeats an entry")
    return names


def _numbers(text, key: str, low: int, high: int) -> list[int]:
    names = _names(str(text), key) if isinstance(text, (str, int)) and not isinstance(text, bool) else None
    if names is None or not all(re.fullmatch(r"\d+", name) for name in names):
        raise ConfigError(f"task.{key}={text!r} of task spoken_digits must be comma-separated integers")
    values = [int(name) for name in names]
    if any(not low <= value <= high for value in values):
        raise ConfigError(f"task.{key}={text!r} of task spoken_digits must lie in {low}..{high}")
    return values


@TASKS.register("spoken_digits")
class SpokenDigits(Task):
    modality = "audio"
    input_kind = "continuous"
    output_kind = "sequence"
    causal = False
    metric = "accuracy"
    solved_at = 0.95

    @dataclass(frozen=True)
    class Params:
        voices: str = "en-us,en-gb,en-gb-scotland,en-029,en-gb-x-rp"  # espeak-ng voices (espeak-ng --voices=en)
        variants: str = "m1,m3,f2,f4"  # espeak-ng variants (espeak-ng --voices=variant); "" = none
        speeds: str = "130,160,190"    # words per minute
        pitches: str = "35,65"         # 0..99
        n_mels: int = 32               # features per frame (input_dim)
        frames: int = 40               # 20 ms frames per example (canvas of frames x 20 ms)
        snr_db: float = 5.0            # noise: signal-to-noise ratio drawn in [snr_db, snr_db + 20] dB
        n_train: int = 6000
        n_eval: int = 1000             # examples in val and in test

    def validate(self):
        p = self.params
        positive_int(self.name, n_mels=p.n_mels, frames=p.frames, n_train=p.n_train, n_eval=p.n_eval)
        if isinstance(p.snr_db, bool) or not isinstance(p.snr_db, (int, float)) or not math.isfinite(p.snr_db):
            raise ConfigError(f"task.snr_db of task spoken_digits must be a number (dB), got {p.snr_db!r}")
        voices, variants = _names(p.voices, "voices"), _names(p.variants, "variants", allow_empty=True)
        speeds, pitches = _numbers(p.speeds, "speeds", 80, 450), _numbers(p.pitches, "pitches", 0, 99)
        _, known_voices, known_variants = _espeak_facts(_espeak())  # raises the install hint when missing
        for voice in voices:
            if voice not in known_voices:
                raise ConfigError(f"task.voices: espeak-ng has no voice {voice!r}; list them with "
                                  f"`espeak-ng --voices=en`")
        for variant in variants:
            if variant and variant not in known_variants:
                raise ConfigError(f"task.variants: espeak-ng has no variant {variant!r}; list them with "
                                  f"`espeak-ng --voices=variant`")
        if len(voices) * len(variants) < 3:
            raise ConfigError("task spoken_digits needs at least 3 speakers (voice x variant combinations: one "
                              f"each for train, val and test); got {len(voices)} x {len(variants)}")
        self._speakers = sorted(product(voices, variants))
        self._prosody = sorted(product(speeds, pitches))

    @property
    def input_dim(self) -> int:
        return self.params.n_mels

    @property
    def n_classes(self) -> int:
        return len(WORDS)

    def max_len(self) -> int:
        return self.params.frames

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def speakers(self) -> dict[str, list[tuple[str, str]]]:
        """The (voice, variant) speakers of each split: disjoint, fixed by a constant seed, each non-empty."""
        count = len(self._speakers)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(_SPLIT_SEED)).tolist()
        n_test = max(1, int(count * _FRACTIONS["test"]))
        n_val = max(1, int(count * _FRACTIONS["val"]))
        parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
        return {split: [self._speakers[i] for i in sorted(index)] for split, index in parts.items()}

    def settings(self) -> dict[str, list[Setting]]:
        """The synthesis settings of each split: its speakers at every speed and pitch."""
        return {split: [Setting(voice, variant, speed, pitch) for voice, variant in speakers
                        for speed, pitch in self._prosody]
                for split, speakers in self.speakers().items()}

    def make_split(self, split: str, n: int, seed: int) -> Split:
        p = self.params
        generator = split_generator(split, seed)
        settings = self.settings()[split]
        labels = (torch.arange(n) % len(WORDS))[torch.randperm(n, generator=generator)]
        which = torch.randint(0, len(settings), (n,), generator=generator)
        canvas = p.frames * HOP
        keys = [(settings[s], WORDS[w]) for s, w in zip(which.tolist(), labels.tolist())]
        unique = sorted(set(keys))
        clips = load_clips(unique)
        # Each distinct word at SAMPLE_RATE (pairs of samples averaged), in a bank padded by a canvas of zeros
        # on either side so that every shifted window is one slice of it.
        waves = [decimate(clips[key]) for key in unique]
        lengths = torch.tensor([len(w) for w in waves])
        width = canvas + int(lengths.max()) + canvas
        bank = torch.zeros(len(unique), width)
        for i, w in enumerate(waves):
            bank[i, canvas:canvas + len(w)] = w
        rms = torch.stack([w.pow(2).mean().sqrt() for w in waves])
        position = {key: i for i, key in enumerate(unique)}
        clip = torch.tensor([position[key] for key in keys], dtype=torch.long)
        length = lengths[clip]
        # Time shift: where the word starts in the canvas, in [min(0, C - len), max(0, C - len)] (cropped when
        # it is longer than the canvas).
        low, high = torch.clamp(canvas - length, max=0), torch.clamp(canvas - length, min=0)
        offset = low + (torch.rand(n, generator=generator, dtype=torch.float64) * (high - low + 1)).long()
        first = clip * width + canvas - offset  # index in the flattened bank of each canvas's first sample
        noise_scale = rms[clip] * 10.0 ** (-(p.snr_db + 20.0 * torch.rand(n, generator=generator)) / 20.0)
        flat, window = bank.reshape(-1), torch.arange(canvas)
        features = []
        for start in range(0, n, _CHUNK):
            part = slice(start, start + _CHUNK)
            size = len(clip[part])
            audio = flat[first[part, None] + window]
            audio += torch.randn(size, canvas, generator=generator) * noise_scale[part, None]
            features.append(log_mel(audio, p.n_mels, p.frames))
        return Split(torch.cat(features).contiguous(), labels)

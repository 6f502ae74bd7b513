"""`spoken_digits`: recognise a spoken digit word ("zero" .. "nine") from its log-mel spectrogram (audio).

Probes classification of a continuous, variable-timing signal: the model must find the word wherever it lies in
the clip and whatever the voice, rate and pitch. A small synthetic cousin of the Free Spoken Digit Dataset and of
keyword spotting (Speech Commands, Warden, 2018, https://arxiv.org/abs/1804.03209); the transformer sees a
sequence of log-mel frames as the Audio Spectrogram Transformer does (Gong et al., 2021,
https://arxiv.org/abs/2104.01778), one frame per token rather than 2-D patches.

Audio: each word is synthesised by the espeak-ng speech synthesiser for every *setting*, a combination of voice
(`task.voices`), voice variant (`task.variants`, e.g. m3, f2), speed in words per minute (`task.speeds`) and pitch
0-99 (`task.pitches`). espeak-ng comes from pip: the `espeakng-loader` wheel (a dependency) ships its C library and
its espeak-ng-data, driven here through ctypes in-process, so no system package is needed; the espeak-ng program
on PATH (`apt-get install espeak-ng`) is used only when that library cannot load. A *speaker* is a voice with a
variant (the voice sets the accent, the variant the timbre). The speakers are partitioned once, by a fixed
permutation, into test (20%), val (10%) and train (the rest), each split taking every speed and pitch of its
speakers: no val or test speaker is ever heard in training (speaker-independent evaluation, as in spoken digit
benchmarks), though its accent occurs there with other timbres and vice versa. So a model is scored on
unseen speakers, not on recalling the training waveforms.

An example draws a setting of its split and a word (words are balanced exactly), then, in torch, from the
split's seeded generator: a time shift (the word, trimmed of silence, is placed at a random offset in a canvas of
`frames` x 20 ms, or randomly cropped where it is longer) and white noise at a random signal-to-noise ratio
between `snr_db` and `snr_db + 20` dB, at 11.025 kHz (espeak-ng's 22.05 kHz output, pairs of samples averaged;
another rate that espeak-ng reports is first resampled to 22.05 kHz).
Features, in torch only: a 512-point STFT (46 ms Hann window, hop 20 ms), power, a triangular mel filterbank
(`mel_filterbank`, HTK mel scale, 50 Hz - 5 kHz) and log, cropped to `frames` frames and standardised per
example (zero mean, unit variance), so input_dim = n_mels.

Synthesis by the library costs about 10 ms a word (a freshly loaded library each, so that a clip never depends
on what was synthesised before it; serial, as the library is not thread-safe), by the program about 50 ms (in
parallel subprocesses). Each clip's waveform (16-bit, silence trimmed) is cached under
`tasks.base.cache_dir()/spoken_digits/`, in a file named by the backend (`lib` or `cli`), its espeak-ng version
and the clip's synthesis parameters; only the clips an example draws are synthesised. Both backends give the
same samples for the same espeak-ng version (the program run with -D, its deterministic mode, from 1.52), but
the names keep them apart, since an older program has no -D and seeds its noise from the clock. The first full
run synthesises every training setting (10 words each); later runs only read files.
"""

from __future__ import annotations

import ctypes
import difflib
import locale
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import wave
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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
INSTALL = "task spoken_digits needs espeak-ng: pip install espeakng-loader (or install the espeak-ng program)"


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

class SynthesisUnavailable(Exception):
    """espeak-ng's library could not be loaded or initialised (the program may still work)."""


class Backend(ABC):
    """One way of running espeak-ng: what it reports about itself and how it speaks one word.

    `key` names the backend and its espeak-ng version in every cached clip's file name, so that clips made by
    different backends or versions never stand in for each other."""

    kind: str           # "lib" or "cli"
    version: str
    voices: frozenset   # voice names, languages and voice files it accepts
    variants: frozenset
    parallel: bool      # whether several words may be synthesised at once

    @property
    def key(self) -> str:
        return f"espeak-ng-{self.kind}-{self.version}"

    @abstractmethod
    def speak(self, setting: "Setting", word: str) -> torch.Tensor:
        """The word's int16 samples at SYNTH_RATE, untrimmed."""


# espeak-ng's C API (speak_lib.h, espeak_ng.h): the values this module uses.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() when the data are missing
_RATE, _PITCH = 1, 3            # espeak_PARAMETER
_POS_CHARACTER = 1
_SYNTH_FLAGS = 0x0 | 0x100 | 0x1000  # espeakCHARS_AUTO | espeakPHONEMES | espeakENDPAUSE, as the program uses
_SEED = 1                       # the random seed of the program's -D (deterministic) mode
# int t_espeak_callback(short *wav, int numsamples, espeak_EVENT *events); 0 = go on. wav is NULL at the end.
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Voice(ctypes.Structure):
    """speak_lib.h's espeak_VOICE."""
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
    for name in ("espeak_SetVoiceByName", "espeak_SetVoiceByProperties", "espeak_SetParameter", "espeak_Synth",
                 "espeak_Synchronize", "espeak_Terminate"):
        getattr(lib, name).restype = ctypes.c_int
    if hasattr(lib, "espeak_ng_SetRandSeed"):  # espeak-ng >= 1.52
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = ctypes.c_int


def _close(handle: int) -> None:
    import _ctypes

    (_ctypes.FreeLibrary if sys.platform == "win32" else _ctypes.dlclose)(handle)


class Library(Backend):
    """espeak-ng's C library as the espeakng-loader wheel ships it (with its espeak-ng-data), driven by ctypes.

    The library keeps its state in process globals (the synthesiser's pitch-flutter phase, sample counters,
    filter memories) that carry over from one utterance to the next, so the same word spoken twice in one
    loaded library differs slightly. Each word is therefore spoken by a freshly loaded library (loaded,
    initialised with the wheel's data path, seeded, used, terminated and unloaded, about 10 ms), exactly as one
    run of the espeak-ng program with -D speaks it: the same parameters give the same samples whatever was
    synthesised before, in this process or on another machine. A lock makes that serial (the library is not
    thread-safe), and LC_CTYPE, which espeak-ng's initialisation sets, is restored afterwards."""

    kind = "lib"
    parallel = False
    _lock = threading.Lock()

    def __init__(self, library: str, data: str):
        self.library, self.data = library, data
        with self._session() as (lib, rate):
            path = ctypes.c_char_p()
            self.version = (lib.espeak_Info(ctypes.byref(path)) or b"unknown").decode().split()[0]
            self.rate = rate
            voices, variants = set(), set()
            for voice in self._list(lib, None):
                voices.update(voice)
            for voice in self._list(lib, _Voice(languages=b"variant")):
                if voice[-1].startswith("!v/"):
                    variants.add(voice[-1][3:])
        self.voices, self.variants = frozenset(voices), frozenset(variants)

    @staticmethod
    def _list(lib, spec: _Voice | None) -> list[tuple[str, ...]]:
        """Each listed voice as (its languages..., its name, its name with _ for spaces, its voice file)."""
        found = lib.espeak_ListVoices(ctypes.byref(spec) if spec is not None else None)
        out, i = [], 0
        while found and found[i]:
            voice = found[i].contents
            raw = ctypes.string_at(voice.languages) if voice.languages else b""
            languages, j = [], 0
            while j < len(raw):  # (priority byte, NUL-terminated language) pairs, ended by a 0 priority
                end = raw.find(b"\0", j + 1)
                end = len(raw) if end < 0 else end
                languages.append(raw[j + 1:end].decode(errors="replace"))
                j = end + 1
            name = (voice.name or b"").decode(errors="replace")
            out.append((*languages, name, name.replace(" ", "_"), (voice.identifier or b"").decode()))
            i += 1
        return out

    @contextmanager
    def _session(self):
        """A freshly loaded and initialised library, and its sample rate; unloaded on leaving."""
        with self._lock:
            saved = locale.setlocale(locale.LC_CTYPE)
            lib = ctypes.CDLL(self.library)
            try:
                _declare(lib)
                rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data.encode(), _INITIALIZE_DONT_EXIT)
                if rate <= 0:
                    raise SynthesisUnavailable(f"libespeak-ng found no usable espeak-ng-data at {self.data}")
                try:
                    yield lib, rate
                finally:
                    lib.espeak_Terminate()
            finally:
                _close(lib._handle)
                locale.setlocale(locale.LC_CTYPE, saved)

    def speak(self, setting: "Setting", word: str) -> torch.Tensor:
        chunks: list[bytes] = []

        def collect(wav, count, events):
            if wav and count > 0:
                chunks.append(ctypes.string_at(wav, 2 * count))
            return 0

        callback = _CALLBACK(collect)  # referenced until the session ends: the library calls it
        voice = setting.voice_arg.encode()
        text = word.encode() + b"\0"
        with self._session() as (lib, rate):
            if hasattr(lib, "espeak_ng_SetRandSeed"):
                lib.espeak_ng_SetRandSeed(_SEED)
            lib.espeak_SetSynthCallback(callback)
            # as the program does for -v: a voice name or file first, else a language
            if lib.espeak_SetVoiceByName(voice) != 0 and \
                    lib.espeak_SetVoiceByProperties(ctypes.byref(_Voice(languages=voice))) != 0:
                raise ConfigError(f"espeak-ng has no voice {setting.voice_arg!r}")
            lib.espeak_SetParameter(_RATE, setting.speed, 0)
            lib.espeak_SetParameter(_PITCH, setting.pitch, 0)
            status = lib.espeak_Synth(text, len(text), 0, _POS_CHARACTER, 0, _SYNTH_FLAGS, None, None)
            status = status or lib.espeak_Synchronize()
        if status != 0 or not chunks:
            raise ConfigError(f"espeak-ng failed for voice {setting.voice_arg!r}, word {word!r}: "
                              f"{'status ' + str(status) if status else 'no audio'}")
        return resample(torch.frombuffer(bytearray(b"".join(chunks)), dtype=torch.int16), rate)


class Program(Backend):
    """The espeak-ng program (a system package), run once per word: the fallback when the library cannot load.
    Each run is a fresh process, so words may be synthesised in parallel; with -D (espeak-ng >= 1.52) it seeds
    its random generator as the library path does, so both give the same samples for the same version."""

    kind = "cli"
    parallel = True

    def __init__(self, executable: str):
        self.executable = executable
        self.version, self.voices, self.variants, self.deterministic = _program_facts(executable)

    def speak(self, setting: "Setting", word: str) -> torch.Tensor:
        """One word by a subprocess with a list of arguments (no shell), read back from its WAV file."""
        with tempfile.TemporaryDirectory(prefix="spoken_digits_") as tmp:
            out = Path(tmp) / "out.wav"
            args = [self.executable, *(["-D"] if self.deterministic else []), "-w", str(out),
                    "-v", setting.voice_arg, "-s", str(setting.speed), "-p", str(setting.pitch), word]
            done = subprocess.run(args, capture_output=True, text=True)
            if done.returncode != 0 or not out.is_file():
                message = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
                raise ConfigError(f"espeak-ng failed for voice {setting.voice_arg!r}, word {word!r}: {message}")
            return read_wav(out)


@lru_cache(maxsize=4)
def _program_facts(executable: str) -> tuple[str, frozenset[str], frozenset[str], bool]:
    """The program's version, the voice and variant names it accepts, and whether it has -D."""
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
    deterministic = re.search(r"^\s*-D\s", subprocess.run([executable, "--help"], capture_output=True,
                                                         text=True).stdout, re.M) is not None
    return version, frozenset(voices), frozenset(variants), deterministic


_LIBRARY: Library | SynthesisUnavailable | None = None  # the first attempt's outcome, kept for the process


def _library() -> Library:
    """The wheel's library (loaded and checked once per process), or SynthesisUnavailable saying why not."""
    global _LIBRARY
    if _LIBRARY is None:
        try:
            import espeakng_loader

            _LIBRARY = Library(espeakng_loader.get_library_path(), espeakng_loader.get_data_path())
        except ImportError:
            _LIBRARY = SynthesisUnavailable("espeakng-loader is not installed")
        except (OSError, RuntimeError, AttributeError, SynthesisUnavailable) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            _LIBRARY = SynthesisUnavailable(f"its libespeak-ng did not load: {reason}")
    if isinstance(_LIBRARY, SynthesisUnavailable):
        raise _LIBRARY
    return _LIBRARY


def backend() -> Backend:
    """The library when it loads, else the espeak-ng program on PATH, else the one-line install hint."""
    try:
        return _library()
    except SynthesisUnavailable as error:
        reason = str(error)
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise ConfigError(f"{INSTALL} ({reason}, and no espeak-ng program is on PATH)")
    return Program(executable)


def resample(samples: torch.Tensor, rate: int) -> torch.Tensor:
    """int16 samples at `rate` -> int16 samples at SYNTH_RATE (linear interpolation; unchanged at SYNTH_RATE)."""
    if rate == SYNTH_RATE or len(samples) < 2:
        return samples
    size = max(1, round(len(samples) * SYNTH_RATE / rate))
    resampled = torch.nn.functional.interpolate(samples.float()[None, None], size=size, mode="linear",
                                                align_corners=False)[0, 0]
    return resampled.round().clamp(-32768, 32767).to(torch.int16)


def read_wav(path: Path) -> torch.Tensor:
    """A 16-bit PCM WAV file (first channel) as int16 samples at SYNTH_RATE."""
    with wave.open(str(path), "rb") as file:
        channels, width, rate = file.getnchannels(), file.getsampwidth(), file.getframerate()
        raw = file.readframes(file.getnframes())
    if width != 2:
        raise ConfigError(f"espeak-ng wrote {8 * width}-bit audio to {path}; spoken_digits reads 16-bit PCM")
    if not raw:
        raise ConfigError(f"espeak-ng wrote no audio to {path}")
    return resample(torch.frombuffer(bytearray(raw), dtype=torch.int16).reshape(-1, channels)[:, 0], rate)


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

    def file_name(self, word: str, key: str) -> str:
        """The cached clip's name: the backend and espeak-ng version (`Backend.key`), then the parameters."""
        voice = re.sub(r"[^A-Za-z0-9_.+-]", "_", self.voice_arg)
        return f"{key}_{voice}_s{self.speed}_p{self.pitch}_{word}.pt"


def synthesise(engine: Backend, setting: Setting, word: str) -> torch.Tensor:
    """One word by espeak-ng, silence trimmed, int16 at SYNTH_RATE."""
    return trim(engine.speak(setting, word))


def load_clips(keys: list[tuple[Setting, str]]) -> dict[tuple[Setting, str], torch.Tensor]:
    """The int16 waveform of each (setting, word), read from the cache or synthesised and cached (serially by
    the library, in parallel subprocesses by the program)."""
    engine = backend()
    folder = cache_dir() / "spoken_digits"
    folder.mkdir(parents=True, exist_ok=True)
    clips, missing = {}, []
    for key in keys:
        path = folder / key[0].file_name(key[1], engine.key)
        if path.is_file():
            clips[key] = torch.load(path, weights_only=True)
        else:
            missing.append((key, path))

    def make(item):
        (setting, word), path = item
        samples = synthesise(engine, setting, word)
        partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        torch.save(samples, partial)
        os.replace(partial, path)  # atomic: a concurrent reader sees the whole file or none
        return samples

    if missing and engine.parallel:
        with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
            for (key, _), samples in zip(missing, pool.map(make, missing)):
                clips[key] = samples
    else:
        for item in missing:
            clips[item[0]] = make(item)
    return clips


def _suggest(name: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=4, cutoff=0.5)
    return f"; close ones: {', '.join(close)}" if close else f"; {len(known)} are installed"


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
        voices: str = "en-us,en-gb,en-gb-scotland,en-029,en-gb-x-rp"  # espeak-ng voices: a language, name or file
        variants: str = "m1,m3,f2,f4"  # espeak-ng variants (files in espeak-ng-data/voices/!v); "" = none
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
        engine = backend()  # raises the install hint when neither the library nor the program works
        for voice in voices:
            if voice not in engine.voices:
                raise ConfigError(f"task.voices: espeak-ng {engine.version} has no voice {voice!r}"
                                  f"{_suggest(voice, engine.voices)}")
        for variant in variants:
            if variant and variant not in engine.variants:
                raise ConfigError(f"task.variants: espeak-ng {engine.version} has no variant {variant!r}"
                                  f"{_suggest(variant, engine.variants)}")
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

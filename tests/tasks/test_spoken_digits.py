"""tasks/spoken_digits.py: mel filterbank, features, WAV reading, settings partition, synthesis by espeak-ng's
library (the espeakng-loader wheel, a pip dependency) with no espeak-ng program on PATH, the program fallback (a
stand-in script), the cache and its backend key, and the one-line error when neither backend works."""

import math
import shutil
import sys
import textwrap
import wave

import pytest
import torch

import tasks.spoken_digits as sd
from models.errors import ConfigError
from tasks import TASKS
from tasks.base import SPLITS


def task(**params):
    return TASKS.get("spoken_digits")(**params)


@pytest.fixture(autouse=True)
def no_program(monkeypatch, tmp_path):
    """Every test runs with an empty PATH (no espeak-ng program) and a private cache."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    return empty


def no_library(monkeypatch):
    def unavailable():
        raise sd.SynthesisUnavailable("its libespeak-ng did not load: (test)")

    monkeypatch.setattr(sd, "_library", unavailable)


# --- features (no espeak-ng needed) ------------------------------------------------------------------------------

@pytest.mark.parametrize("n_mels,n_fft,rate,f_max", [(32, 512, 11025, 5000.0), (40, 1024, 16000, 8000.0),
                                                     (8, 256, 8000, 4000.0)])
def test_mel_filterbank_shape_sign_and_ordered_peaks(n_mels, n_fft, rate, f_max):
    bank = sd.mel_filterbank(n_mels, n_fft, rate, 50.0, f_max)
    assert bank.shape == (n_mels, n_fft // 2 + 1)
    assert (bank >= 0).all() and bank.max() <= 1.0 + 1e-6
    assert (bank.sum(1) > 0).all(), "every filter covers at least one STFT bin"
    peaks = bank.argmax(1)
    assert (peaks[1:] > peaks[:-1]).all(), "filters peak at increasing frequencies"
    freqs = torch.linspace(0, rate / 2, n_fft // 2 + 1)
    support = freqs[(bank > 0).any(0)]
    assert support.min() >= 50.0 and support.max() <= f_max
    # centres are equally spaced on the mel scale
    centres = sd.mel_to_hz(torch.linspace(float(sd.hz_to_mel(torch.tensor(50.0))),
                                          float(sd.hz_to_mel(torch.tensor(f_max))), n_mels + 2))[1:-1]
    assert (freqs[peaks] - centres).abs().max() <= rate / n_fft


def test_mel_scale_round_trips():
    hz = torch.tensor([0.0, 100.0, 1000.0, 4000.0])
    assert torch.allclose(sd.mel_to_hz(sd.hz_to_mel(hz)), hz, atol=1e-3)
    assert sd.hz_to_mel(torch.tensor(1000.0)).item() == pytest.approx(1000.0, abs=1.0)


def test_log_mel_of_a_tone_peaks_in_its_band():
    t = torch.arange(40 * sd.HOP) / sd.SAMPLE_RATE
    waves = torch.stack([torch.sin(2 * math.pi * f * t) for f in (300.0, 1200.0, 3000.0)])
    features = sd.log_mel(waves, n_mels=32, frames=40)
    assert features.shape == (3, 40, 32) and torch.isfinite(features).all()
    assert torch.allclose(features.mean((1, 2)), torch.zeros(3), atol=1e-4)
    bank = sd.mel_filterbank(32)
    freqs = torch.linspace(0, sd.SAMPLE_RATE / 2, sd.N_FFT // 2 + 1)
    for row, f in zip(features, (300.0, 1200.0, 3000.0)):
        band = int(bank[:, (freqs - f).abs().argmin()].argmax())
        assert abs(int(row[20].argmax()) - band) <= 1


def test_read_wav_and_trim(tmp_path):
    samples = torch.zeros(3000, dtype=torch.int16)
    samples[1000:1500] = 8000
    path = tmp_path / "x.wav"
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1), file.setsampwidth(2), file.setframerate(sd.SYNTH_RATE)
        file.writeframes(samples.numpy().tobytes())
    read = sd.read_wav(path)
    assert read.dtype == torch.int16 and torch.equal(read, samples)
    trimmed = sd.trim(read, margin=10)
    assert len(trimmed) == 520 and (trimmed[10:510] == 8000).all()
    with wave.open(str(path), "wb") as file:  # another rate is resampled to SYNTH_RATE
        file.setnchannels(1), file.setsampwidth(2), file.setframerate(sd.SYNTH_RATE // 2)
        file.writeframes(samples.numpy().tobytes())
    assert len(sd.read_wav(path)) == 6000
    assert sd.decimate(samples[:7]).shape == (4,)


# --- the library (no program) -------------------------------------------------------------------------------------

def test_the_library_speaks_with_no_program_on_path():
    assert shutil.which("espeak-ng") is None
    engine = sd.backend()
    assert isinstance(engine, sd.Library) and engine.key.startswith("espeak-ng-lib-1.")
    assert {"en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp"} <= engine.voices
    assert {"m1", "m3", "f2", "f4"} <= engine.variants
    setting = sd.Setting("en-gb", "m3", 160, 35)
    words = {word: sd.synthesise(engine, setting, word) for word in sd.WORDS}
    for word, samples in words.items():
        assert samples.dtype == torch.int16
        assert 0.2 * sd.SYNTH_RATE < len(samples) < 1.5 * sd.SYNTH_RATE, (word, len(samples))
        assert samples.abs().max() > 3000 and samples.float().pow(2).mean().sqrt() > 300, word  # not silent
    lengths = {len(samples) for samples in words.values()}
    assert len(lengths) >= 8, "different words have different durations"
    assert not torch.equal(words["one"][:6000], words["nine"][:6000])


def test_the_library_gives_the_same_samples_whatever_came_before():
    """The library's globals carry state from one utterance to the next; each word gets a fresh one."""
    engine = sd.backend()
    setting = sd.Setting("en-us", "f2", 130, 65)
    first = engine.speak(setting, "seven")
    engine.speak(sd.Setting("en-029", "m1", 190, 35), "two")
    assert torch.equal(engine.speak(setting, "seven"), first)
    other = engine.speak(sd.Setting("en-us", "f2", 190, 65), "seven")  # another speed: another clip
    assert not torch.equal(other, first) and len(other) < len(first)
    pitched = engine.speak(sd.Setting("en-us", "f2", 130, 35), "seven")
    assert not torch.equal(pitched, first)


def test_a_library_that_does_not_load_says_why(monkeypatch, tmp_path):
    import espeakng_loader

    with pytest.raises(OSError):
        sd.Library(str(tmp_path / "libespeak-ng.so"), espeakng_loader.get_data_path())
    with pytest.raises(sd.SynthesisUnavailable, match="no usable espeak-ng-data"):  # returns, does not exit
        sd.Library(espeakng_loader.get_library_path(), str(tmp_path))
    monkeypatch.setattr(sd, "_LIBRARY", None)
    monkeypatch.setattr(espeakng_loader, "get_data_path", lambda: str(tmp_path))
    with pytest.raises(ConfigError) as info:
        sd.backend()
    assert str(info.value) == (f"{sd.INSTALL} (its libespeak-ng did not load: libespeak-ng found no usable "
                               f"espeak-ng-data at {tmp_path}, and no espeak-ng program is on PATH)")


# --- neither backend ----------------------------------------------------------------------------------------------

def test_no_library_and_no_program_is_a_one_line_config_error(monkeypatch):
    no_library(monkeypatch)
    with pytest.raises(ConfigError) as info:
        task()
    message = str(info.value)
    assert message.startswith("task spoken_digits needs espeak-ng: pip install espeakng-loader")
    assert "no espeak-ng program is on PATH" in message and "\n" not in message
    with pytest.raises(ConfigError, match="pip install espeakng-loader"):
        sd.load_clips([(sd.Setting("en-us", "", 150, 50), "one")])


# --- the program fallback (a stand-in script, since the real program need not be installed) ------------------------

FAKE_PROGRAM = """\
import math, struct, sys, wave
open(sys.argv[0] + ".log", "a").write(" ".join(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args == ["--version"]:
    print("eSpeak NG text-to-speech: 1.52.0  Data at: /usr/share/espeak-ng-data")
elif args == ["--help"]:
    print("-D\\t   Enable deterministic random mode")
elif args == ["--voices"]:
    print("Pty Language       Age/Gender VoiceName          File                 Other Languages")
    print(" 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)")
    print(" 5  en-029          --/M      English_(Caribbean) gmw/en-029")
    print(" 2  en-gb           --/M      English_(Great_Britain) gmw/en               (en 2)")
elif args == ["--voices=variant"]:
    print("Pty Language       Age/Gender VoiceName          File                 Other Languages")
    print(" 0  variant          --/M      Male_3             !v/m3")
else:
    out, word = args[args.index("-w") + 1], args[-1]
    rate = 16000  # not 22050: the fallback resamples
    samples = [0] * 800 + [int(8000 * math.sin(0.05 * i * len(word))) for i in range(rate // 2)] + [0] * 800
    with wave.open(out, "wb") as file:
        file.setnchannels(1), file.setsampwidth(2), file.setframerate(rate)
        file.writeframes(struct.pack(f"<{len(samples)}h", *samples))
"""


@pytest.fixture
def fake_program(no_program):
    path = no_program / "espeak-ng"
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(FAKE_PROGRAM))
    path.chmod(0o755)
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in program is a script with a #! line")
def test_the_program_is_the_fallback_and_its_clips_are_cached_apart(monkeypatch, tmp_path, fake_program):
    setting = sd.Setting("en-gb", "m3", 160, 35)
    library_clip = sd.load_clips([(setting, "two")])[(setting, "two")]
    library_key = sd.backend().key
    no_library(monkeypatch)
    engine = sd.backend()
    assert isinstance(engine, sd.Program) and engine.key == "espeak-ng-cli-1.52.0" != library_key
    assert engine.deterministic and {"en-us", "en-gb", "gmw/en-029"} <= engine.voices
    assert task(voices="en-us,en-gb,en-029", variants="m3").settings()
    program_clip = sd.load_clips([(setting, "two")])[(setting, "two")]
    assert not torch.equal(program_clip, library_clip)  # the stand-in's tone, not the library's speech
    assert abs(len(program_clip) - sd.SYNTH_RATE // 2) < 2 * sd.SYNTH_RATE // 100  # resampled, trimmed
    files = sorted(p.name for p in (tmp_path / "cache" / "spoken_digits").iterdir())
    assert files == sorted([f"{library_key}_en-gb+m3_s160_p35_two.pt", "espeak-ng-cli-1.52.0_en-gb+m3_s160_p35_two.pt"])
    calls = (fake_program.parent / "espeak-ng.log").read_text().splitlines()
    speak = [call.split() for call in calls if "-w" in call]
    assert len(speak) == 1 and speak[0][0] == "-D"
    assert speak[0][-7:] == ["-v", "en-gb+m3", "-s", "160", "-p", "35", "two"]


@pytest.mark.parametrize("params,match", [
    (dict(voices="en-us,klingon"), "no voice 'klingon'"), (dict(variants="m1,zz9"), "no variant 'zz9'"),
    (dict(speeds="130,fast"), "comma-separated integers"), (dict(pitches="120"), "0..99"),
    (dict(voices="en-us,,en-gb"), "empty entry"), (dict(speeds="130,130"), "repeats"),
    (dict(voices="en-us,en-gb", variants="m1", speeds="130,160", pitches="50"), "at least 3 speakers"),
    (dict(snr_db="loud"), "must be a number"), (dict(n_mels=0), "positive integer"),
])
def test_invalid_parameters_are_one_line_errors(params, match):
    with pytest.raises(ConfigError, match=match) as info:
        task(**params)
    assert "\n" not in str(info.value)


def test_speakers_partition_is_disjoint_fixed_and_complete():
    t = task()
    speakers, settings = t.speakers(), t.settings()
    assert [len(speakers[s]) for s in ("train", "val", "test")] == [14, 2, 4]
    seen = [s for split in SPLITS for s in speakers[split]]
    assert len(seen) == len(set(seen)) == 5 * 4
    assert speakers == task().speakers()
    for split in SPLITS:  # each split holds every speed and pitch of its speakers, and nothing else
        assert len(settings[split]) == len(speakers[split]) * 3 * 2
        assert {(s.voice, s.variant) for s in settings[split]} == set(speakers[split])
    all_settings = [s for split in SPLITS for s in settings[split]]
    assert len(all_settings) == len(set(all_settings)) == 5 * 4 * 3 * 2
    small = task(voices="en-us,en-gb,en-029", variants="", speeds="130", pitches="50")
    assert all(len(v) == 1 for v in small.settings().values())


def test_synthesis_is_cached_under_a_name_of_its_backend_and_parameters(monkeypatch, tmp_path):
    setting = sd.Setting("en-gb", "m3", 160, 35)
    clips = sd.load_clips([(setting, "seven"), (setting, "two")])
    files = sorted(p.name for p in (tmp_path / "cache" / "spoken_digits").iterdir())
    version = sd.backend().version
    assert files == [f"espeak-ng-lib-{version}_en-gb+m3_s160_p35_seven.pt",
                     f"espeak-ng-lib-{version}_en-gb+m3_s160_p35_two.pt"]
    seven = clips[(setting, "seven")]
    assert seven.dtype == torch.int16 and 0.2 * sd.SYNTH_RATE < len(seven) < 1.0 * sd.SYNTH_RATE
    assert seven.abs().max() > 1000

    def no_synthesis(*args):
        raise AssertionError("a cached clip was synthesised again")

    monkeypatch.setattr(sd, "synthesise", no_synthesis)
    again = sd.load_clips([(setting, "seven")])
    assert torch.equal(again[(setting, "seven")], seven)


def test_examples_shift_and_noise_vary_but_words_are_balanced(tmp_path):
    t = task(voices="en-us,en-gb,en-029", variants="", speeds="160", pitches="50", n_eval=40)
    data = t.make_split("val", 40, seed=0)  # one speaker, one setting: 10 distinct clips, 4 examples of each
    assert data.inputs.shape == (40, 40, 32) and torch.isfinite(data.inputs).all()
    assert torch.bincount(data.targets, minlength=10).tolist() == [4] * 10
    first = data.inputs[data.targets == 3]
    assert not torch.allclose(first[0], first[1])  # same clip, another shift and noise
    assert len(list((tmp_path / "cache" / "spoken_digits").iterdir())) == 10


@pytest.mark.slow
def test_full_eval_splits_synthesise_and_hold_their_settings_only():
    """Synthesises the default val and test splits from scratch (36 settings x 10 words) in a private cache."""
    t = task()
    parts = t.speakers()
    for split in ("val", "test"):
        data = t.make_split(split, 1000, seed=0)
        assert data.inputs.shape == (1000, 40, 32) and torch.isfinite(data.inputs).all()
        assert torch.bincount(data.targets, minlength=10).tolist() == [100] * 10
    assert not set(parts["train"]) & (set(parts["val"]) | set(parts["test"]))

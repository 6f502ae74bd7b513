"""tasks/spoken_digits.py: mel filterbank, features, WAV reading, settings partition, synthesis cache, and the
one-line error when espeak-ng is missing. Tests that synthesise need espeak-ng (CI installs it: .ci/run)."""

import math
import wave

import pytest
import torch

import tasks.spoken_digits as sd
from models.errors import ConfigError
from tasks import TASKS
from tasks.base import SPLITS


def task(**params):
    return TASKS.get("spoken_digits")(**params)


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


# --- espeak-ng missing --------------------------------------------------------------------------------------------

def test_missing_espeak_ng_is_a_one_line_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no espeak-ng on PATH
    with pytest.raises(ConfigError) as info:
        task()
    message = str(info.value)
    assert message == "task spoken_digits needs espeak-ng: apt-get install espeak-ng"
    assert "\n" not in message
    with pytest.raises(ConfigError, match="apt-get install espeak-ng"):
        sd.load_clips([(sd.Setting("en-us", "", 150, 50), "one")])


# --- with espeak-ng (CI installs it) ------------------------------------------------------------------------------

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


def test_synthesis_is_cached_under_a_name_of_its_parameters(monkeypatch, tmp_path):
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path))
    setting = sd.Setting("en-gb", "m3", 160, 35)
    clips = sd.load_clips([(setting, "seven"), (setting, "two")])
    files = sorted(p.name for p in (tmp_path / "spoken_digits").iterdir())
    version = sd._espeak_facts(sd._espeak())[0]
    assert files == [f"espeak-ng-{version}_en-gb+m3_s160_p35_seven.pt", f"espeak-ng-{version}_en-gb+m3_s160_p35_two.pt"]
    seven = clips[(setting, "seven")]
    assert seven.dtype == torch.int16 and 0.2 * sd.SYNTH_RATE < len(seven) < 1.0 * sd.SYNTH_RATE
    assert seven.abs().max() > 1000

    def no_synthesis(*args):
        raise AssertionError("a cached clip was synthesised again")

    monkeypatch.setattr(sd, "synthesise", no_synthesis)
    again = sd.load_clips([(setting, "seven")])
    assert torch.equal(again[(setting, "seven")], seven)


def test_examples_shift_and_noise_vary_but_words_are_balanced(monkeypatch, tmp_path):
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path))
    t = task(voices="en-us,en-gb,en-029", variants="", speeds="160", pitches="50", n_eval=40)
    data = t.make_split("val", 40, seed=0)  # one speaker, one setting: 10 distinct clips, 4 examples of each
    assert data.inputs.shape == (40, 40, 32) and torch.isfinite(data.inputs).all()
    assert torch.bincount(data.targets, minlength=10).tolist() == [4] * 10
    first = data.inputs[data.targets == 3]
    assert not torch.allclose(first[0], first[1])  # same clip, another shift and noise
    assert len(list((tmp_path / "spoken_digits").iterdir())) == 10


@pytest.mark.slow
def test_full_eval_splits_synthesise_and_hold_their_settings_only(monkeypatch, tmp_path):
    """Synthesises the default val and test splits from scratch (36 settings x 10 words) in a private cache."""
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path))
    t = task()
    parts = t.speakers()
    for split in ("val", "test"):
        data = t.make_split(split, 1000, seed=0)
        assert data.inputs.shape == (1000, 40, 32) and torch.isfinite(data.inputs).all()
        assert torch.bincount(data.targets, minlength=10).tolist() == [100] * 10
    assert not set(parts["train"]) & (set(parts["val"]) | set(parts["test"]))

"""A small recurrent event detector with a spectral front-end, and sequences of real-looking signals for it.

``spectral_lstm`` -- per step, 64 ms of 8 kHz audio:
    an STFT-like Conv1d (Hann-windowed cos/sin kernels of 128 samples, hop 64, 48 bins), magnitude,
    log compression, two Conv1d + ReLU over the 7 frames, mean over frames, an LSTM cell (32 units) whose
    h and c are state, a Linear and a sigmoid: the probability that a tonal event (tone or chirp) sounds.
    Inputs:  ``audio`` float32 (1, 1, 512); ``h``, ``c`` float32 (1, 32) (state <- h_out, c_out)
    Outputs: ``event_prob`` float32 (1, 1), ``h_out``, ``c_out`` float32 (1, 32)
    Weights: spectral_lstm.pt, trained by `python tests/zoo/spectral.py train` (seeded, about 90 s on one
    core) to tell tones and chirps from background noise and noise bursts.

Signals (`make_sequence`): background noise at a random level, tones (with harmonics) and linear chirps with
onsets and offsets at random steps and soft attacks, and broadband noise bursts that are not events, so that the
decision changes several times in a sequence. `calibration_sequences` and `evaluation_sequences` are data
callables for infercc (one dict per sequence: audio (T, 1, 1, 512)); `write_sequences` saves .npz files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

RATE = 8000
STEP = 512  # samples per step (64 ms)
WINDOW, HOP, BINS, HIDDEN = 128, 64, 48, 32
WEIGHTS = Path(__file__).with_name("spectral_lstm.pt")


class SpectralLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stft = nn.Conv1d(1, 2 * BINS, WINDOW, stride=HOP, bias=False)
        self.conv1 = nn.Conv1d(BINS, 32, 3, padding=1)
        self.conv2 = nn.Conv1d(32, 32, 3, padding=1)
        self.input_gates = nn.Linear(32, 4 * HIDDEN)
        self.hidden_gates = nn.Linear(HIDDEN, 4 * HIDDEN, bias=False)
        self.head = nn.Linear(HIDDEN, 1)
        self.stft.weight.data.copy_(_dft_kernels())
        self.stft.weight.requires_grad_(False)

    def forward(self, audio: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> dict[str, torch.Tensor]:
        spec = self.stft(audio)
        real, imag = spec[:, :BINS], spec[:, BINS:]
        magnitude = torch.log(torch.sqrt(real * real + imag * imag + 1e-8) + 1e-3)
        features = torch.relu(self.conv2(torch.relu(self.conv1(magnitude)))).mean(dim=2)
        gates = self.input_gates(features) + self.hidden_gates(h)
        i, f, g, o = gates.chunk(4, dim=1)
        c_out = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_out = torch.sigmoid(o) * torch.tanh(c_out)
        return {"event_prob": torch.sigmoid(self.head(h_out)), "h_out": h_out, "c_out": c_out}


def _dft_kernels() -> torch.Tensor:
    """Hann-windowed cos and sin kernels for bins 2..BINS+1 of a WINDOW-point DFT (62.5 Hz apart)."""
    n = np.arange(WINDOW)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / WINDOW)
    bins = np.arange(2, BINS + 2)[:, None]
    cos = np.cos(2 * np.pi * bins * n / WINDOW) * window
    sin = -np.sin(2 * np.pi * bins * n / WINDOW) * window
    return torch.from_numpy(np.concatenate([cos, sin])[:, None, :].astype(np.float32))


def spectral_lstm() -> nn.Module:
    model = SpectralLSTM()
    if WEIGHTS.is_file():
        model.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    return model.eval()


# --- signals ----------------------------------------------------------------------------------------------


def _envelope(length: int, attack: int) -> np.ndarray:
    env = np.ones(length)
    ramp = min(attack, length // 2)
    if ramp:
        env[:ramp] = np.linspace(0, 1, ramp)
        env[-ramp:] = np.linspace(1, 0, ramp)
    return env


def _tone(rng: np.random.Generator, length: int) -> np.ndarray:
    t = np.arange(length) / RATE
    f0 = rng.uniform(200, 1200)
    if rng.random() < 0.5:  # a linear chirp
        f1 = rng.uniform(200, 3000)
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * t[-1] + 1e-9))
        return np.sin(phase)
    harmonics = rng.integers(1, 4)
    return sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, harmonics + 1))


def make_sequence(rng: np.random.Generator, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(audio (steps, 1, 1, STEP) float32, labels (steps,) 0/1): background noise, 1-3 tonal events and 0-2
    noise bursts at random onsets; a step is labelled 1 when a tonal event covers most of it."""
    total = steps * STEP
    audio = rng.standard_normal(total) * 10 ** rng.uniform(-3.0, -1.7)
    active = np.zeros(total, dtype=bool)
    for _ in range(rng.integers(1, 4)):
        length = int(rng.integers(4, 16)) * STEP + int(rng.integers(0, STEP))
        start = int(rng.integers(0, max(total - length, 1)))
        level = 10 ** rng.uniform(-1.6, -0.5)
        audio[start : start + length] += (
            level * _tone(rng, length) * _envelope(length, int(rng.integers(64, 800)))
        )
        active[start : start + length] = True
    for _ in range(rng.integers(0, 3)):
        length = int(rng.integers(2, 8)) * STEP
        start = int(rng.integers(0, max(total - length, 1)))
        burst = rng.standard_normal(length) * 10 ** rng.uniform(-1.6, -0.6)
        audio[start : start + length] += burst * _envelope(length, int(rng.integers(32, 400)))
    labels = active.reshape(steps, STEP).mean(axis=1) > 0.5
    return audio.reshape(steps, 1, 1, STEP).astype(np.float32), labels.astype(np.float32)


def _sequences(seed: int, count: int, steps: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield {"audio": make_sequence(rng, steps)[0]}


def calibration_sequences():
    """infercc data callable: 24 sequences of 60 steps (3.8 s each)."""
    yield from _sequences(1, 24, 60)


def evaluation_sequences():
    """infercc data callable: 40 other sequences of 100 steps (6.4 s each)."""
    yield from _sequences(2, 40, 100)


def write_sequences(folder: Path, count: int, steps: int, seed: int) -> list[Path]:
    """Save `count` sequences as .npz files (key audio, shape (steps, 1, 1, 512)) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, sequence in enumerate(_sequences(seed, count, steps)):
        path = folder / f"seq{i:03d}.npz"
        np.savez(path, **sequence)
        paths.append(path)
    return paths


# --- training (run once; the weights ship as spectral_lstm.pt) -------------------------------------------


def train(iterations: int = 400, batch: int = 16, steps: int = 40) -> None:
    torch.set_num_threads(1)  # a tiny model: more threads only contend (10x slower on a busy 2-core box)
    torch.manual_seed(0)
    rng = np.random.default_rng(1234)
    model = SpectralLSTM()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for it in range(iterations):
        pairs = [make_sequence(rng, steps) for _ in range(batch)]
        audio = torch.from_numpy(np.stack([a[:, 0] for a, _ in pairs], axis=1))  # (steps, batch, 1, STEP)
        labels = torch.from_numpy(np.stack([y for _, y in pairs], axis=1))  # (steps, batch)
        h = c = torch.zeros(batch, HIDDEN)
        loss = torch.zeros(())
        for t in range(steps):
            out = model(audio[t], h, c)
            h, c = out["h_out"], out["c_out"]
            loss = loss + nn.functional.binary_cross_entropy(out["event_prob"][:, 0], labels[t])
        optimizer.zero_grad()
        (loss / steps).backward()
        optimizer.step()
        if it % 50 == 0:
            print(f"iteration {it}: loss {loss.item() / steps:.4f}", flush=True)
    torch.save(model.state_dict(), WEIGHTS)
    print(f"saved {WEIGHTS}")


if __name__ == "__main__" and sys.argv[1:] == ["train"]:
    train()

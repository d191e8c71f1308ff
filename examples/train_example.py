"""Train the example Conv2dFSQ on SYNTHETIC IMU windows, deterministically, in ~30 s of CPU.

The data is made up: four "behaviours" are sine patterns of different frequency and amplitude on the
9 IMU channels of 2 sensors, plus noise. It exists so the quick start works offline; the metrics it
prints describe this synthetic task, not real animals.

    python examples/train_example.py            # writes examples/conv2d_fsq.pt, prints metrics

Rerunning it with the pinned torch (constraints.txt) on an x86-64 CPU with AVX-512 writes the shipped
checkpoint's exact bytes, on any number of cores: the seeds are fixed, the algorithms deterministic, and the
thread count is fixed at ``THREADS``, because torch's CPU kernels split their sums by thread count and a
different split rounds differently (1 thread instead of 2 moves weights by up to 0.036 after 3 epochs). Other
CPUs (AVX2-only x86, ARM) run other kernels: the same bytes run after run there, but not the shipped ones.
``torch.save`` names the archive inside the file after the file, so it is written under the shipped name and
then moved.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from conv2d_bundle.models import Conv2dFSQ

HERE = Path(__file__).parent
# The thread count examples/conv2d_fsq.pt was trained with; changing it changes the weights.
THREADS = 2
# torch.save names the archive inside the file after the file's stem: part of the checkpoint's bytes.
ARCHIVE_NAME = "conv2d_fsq.pt"


def synthetic_windows(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    t = np.linspace(0, 1, 100, dtype=np.float32)
    freq = np.array([0.5, 2.0, 4.0, 7.0])[labels]
    amp = np.array([0.1, 0.8, 1.2, 1.6])[labels]
    phase = rng.uniform(0, 2 * np.pi, (n, 9, 2, 1))
    x = amp[:, None, None, None] * np.sin(2 * np.pi * freq[:, None, None, None] * t + phase)
    x += 0.3 * rng.standard_normal(x.shape)
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(labels)


def evaluate(model: Conv2dFSQ, x: torch.Tensor, y: torch.Tensor, n_bins: int = 10) -> dict[str, float]:
    """accuracy, macro F1, expected calibration error, and the perplexity of the codes used."""
    with torch.no_grad():
        codes, conf = model(x)
    pred, top = conf.argmax(1), conf.max(1).values
    accuracy = float((pred == y).float().mean())
    f1s = []
    for c in range(conf.shape[1]):
        tp = float(((pred == c) & (y == c)).sum())
        fp, fn = float(((pred == c) & (y != c)).sum()), float(((pred != c) & (y == c)).sum())
        f1s.append(2 * tp / max(2 * tp + fp + fn, 1.0))
    ece = 0.0
    for lo in range(n_bins):
        in_bin = (top > lo / n_bins) & (top <= (lo + 1) / n_bins)
        if in_bin.any():
            ece += float(in_bin.float().mean()) * abs(
                float((pred[in_bin] == y[in_bin]).float().mean()) - float(top[in_bin].mean())
            )
    p = torch.bincount(codes, minlength=model.fsq.codebook_size).float() / len(codes)
    perplexity = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
    return {
        "accuracy": round(accuracy, 4),
        "macro_f1": round(sum(f1s) / len(f1s), 4),
        "ece": round(ece, 4),
        "perplexity": round(perplexity, 2),
    }


def train(seed: int = 0, epochs: int = 3, windows: int = 1536) -> tuple[Conv2dFSQ, dict[str, float]]:
    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    x, y = synthetic_windows(windows, seed)
    xv, yv = synthetic_windows(512, seed + 1)
    model = Conv2dFSQ()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        model.train()
        for i in range(0, len(x), 64):
            _, logits = model.device_forward(x[i : i + 64])
            loss = torch.nn.functional.cross_entropy(logits, y[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model, evaluate(model, xv, yv)


def save(model: Conv2dFSQ, output: Path) -> None:
    """Write the state dict with the same bytes whatever ``output`` is called."""
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / ARCHIVE_NAME
        torch.save(model.state_dict(), staged)
        shutil.move(staged, output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=HERE / "conv2d_fsq.pt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--windows", type=int, default=1536, help="training windows (a short run for tests)")
    args = parser.parse_args()
    model, metrics = train(args.seed, args.epochs, args.windows)
    save(model, args.output)
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    print(f"wrote {args.output} ({sum(p.numel() for p in model.parameters())} parameters), sha256 {digest}")
    print("metrics on the synthetic validation split:", metrics)


if __name__ == "__main__":
    main()

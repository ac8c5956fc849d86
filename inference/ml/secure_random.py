"""Cryptographically strong randomness for private training (DP_SECURE_MODE): torch, Opacus and `cryptography`.

Imported only where a private run starts (inference/ml/private.py), like the rest of the ML stack.

DP-SGD's guarantee assumes that nobody can predict the noise or which rows each step sampled. A
seeded PRNG (torch's Mersenne Twister or Philox) is predictable from its state, so Opacus's
`secure_mode` draws both from torchcsprng, which was last built for torch 1.8 and does not install
beside torch 2. This module is that generator: AES-256 in counter mode, keyed from the operating
system's CSPRNG (`os.urandom`), the construction of NIST SP 800-90A's CTR_DRBG, computed by OpenSSL
through `cryptography` (~2.9 GB/s of key stream on one core of the bench VM, with AES-NI). From it:

- uniforms in (0, 1) with 53 random bits, for Poisson sampling (each row in with probability q);
- Gaussians by the Box-Muller transform on those uniforms, and DP noise as Opacus's secure mode
  makes it: the sum of 2n = 4 Gaussians of the standard deviation wanted, divided by 2, which
  defends the floating-point representation against the attacks of Jin et al. (2021) and of
  Haney et al. (2022) (Holohan and Braghin 2021, section 5.1; opacus.optimizers.optimizer._generate_noise).

The key stream is made on the CPU; on a GPU the noise is moved to the device once per chunk.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

import torch
from opacus.utils.uniform_sampler import UniformWithReplacementSampler

MAX_DRAW = 1 << 20  # noise values a draw makes at once: bounds the temporaries (4 normals each, float64)


class SecureRandom:
    """A CTR_DRBG-style stream of random words, keyed from os.urandom; safe to share across threads."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        self._stream = Cipher(algorithms.AES(os.urandom(32)), modes.CTR(os.urandom(16))).encryptor()
        self._lock = threading.Lock()

    def words(self, n: int) -> Any:
        """n random 64-bit words (a torch int64 tensor on the CPU)."""
        out = bytearray(8 * n + 15)  # update_into wants room for one block more than it is given
        with self._lock:
            written = self._stream.update_into(bytes(8 * n), out)
        assert written == 8 * n
        return torch.frombuffer(out, dtype=torch.int64, count=n)  # keeps `out` alive; no copy

    def uniform(self, n: int, device: Any = "cpu") -> Any:
        """n uniforms in the open interval (0, 1), float64, 53 random bits each, made on `device`."""
        return _uniform(self.words(n).to(device))

    def normal(self, n: int, device: Any = "cpu") -> Any:
        """n standard Gaussians (float64), by Box-Muller."""
        return _box_muller(self.uniform(2 * ((n + 1) // 2), device), n)

    def bernoulli_mask(self, n: int, p: float) -> Any:
        """n independent booleans, each True with probability p (Poisson sampling's mask)."""
        return self.uniform(n) < p

    def dp_noise(self, n: int, std: float, *, device: Any, dtype: Any) -> Any:
        """n values of Gaussian noise of standard deviation `std`, as Opacus's secure mode makes it."""
        out = torch.empty(n, dtype=dtype, device=device)
        for start in range(0, n, MAX_DRAW):
            count = min(MAX_DRAW, n - start)
            total = self.normal(4 * count, device).view(4, count).sum(dim=0)
            out[start : start + count] = total.mul_(std / 2.0)
        return out


def _uniform(words: Any) -> Any:
    """(top 53 bits + 1/2) / 2^53 of each word: exact in float64, never 0 nor 1."""
    top = torch.bitwise_right_shift(words, 11).to(torch.float64)  # in [-2^52, 2^52), exactly
    return top.add_(2.0**52 + 0.5).mul_(2.0**-53)


def _box_muller(u: Any, n: int) -> Any:
    pairs = u.numel() // 2
    radius = torch.log(u[:pairs]).mul_(-2.0).sqrt_()
    angle = u[pairs:].mul_(2.0 * math.pi)
    out = torch.empty(2 * pairs, dtype=torch.float64, device=u.device)
    torch.mul(radius, torch.cos(angle), out=out[:pairs])
    torch.mul(radius, torch.sin(angle), out=out[pairs:])
    return out[:n]


def secure_poisson(sampler: Any, random: SecureRandom) -> None:
    """Makes Opacus's Poisson sampler (UniformWithReplacementSampler) draw each step's rows from `random`."""
    if type(sampler) is not UniformWithReplacementSampler:
        raise TypeError(f"expected Opacus's UniformWithReplacementSampler, got {type(sampler).__name__}")
    sampler.__class__ = SecurePoissonSampler
    sampler.secure_random = random


class SecurePoissonSampler(UniformWithReplacementSampler):  # type: ignore[misc]
    """Opacus's sampler, its per-step mask (each row in with probability q) drawn from a SecureRandom."""

    secure_random: SecureRandom

    def __iter__(self) -> Any:
        for _ in range(self.steps):
            mask = self.secure_random.bernoulli_mask(self.num_samples, self.sample_rate)
            yield mask.nonzero(as_tuple=False).reshape(-1).tolist()

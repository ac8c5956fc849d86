from __future__ import annotations


def best_device() -> str:
    """CUDA where a GPU is present, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

from __future__ import annotations


def best_device() -> str:
    """CUDA where a GPU is present, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_description() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
    return f"cpu ({torch.get_num_threads()} threads)"

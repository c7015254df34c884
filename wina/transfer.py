"""Host-to-device copies that do not make the host wait for the device's queue."""

from __future__ import annotations

import torch


def to_device_async(t: torch.Tensor, device) -> torch.Tensor:
    """A host tensor on ``device`` without a stream sync: a copy from pageable memory to a GPU waits for the device's
    queue (PyTorch syncs the stream after it), one from pinned memory does not."""
    device = torch.device(device)
    return t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t.to(device)

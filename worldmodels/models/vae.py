"""V of the V/M/C model (Ha & Schmidhuber 2018): a convolutional VAE of 64x64 frames.

Encoder: four 4x4 stride-2 convolutions (depth x 1, 2, 4, 8 channels, ReLU) to a 2x2 map, then a
Gaussian over ``z``. Decoder: a dense layer to a 1x1 map and four stride-2 transposed
convolutions (kernels 5, 5, 6, 6) back to 64x64, with a sigmoid. The loss is the paper's: squared
error summed over pixels plus the KL to N(0, I), which is not pushed below ``kl_tolerance * z``
nats (free bits, so the code is not squeezed to nothing).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

IMAGE_SIZE = 64


class Posterior(NamedTuple):
    mean: Tensor
    logvar: Tensor

    def sample(self, generator=None) -> Tensor:
        eps = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + torch.exp(0.5 * self.logvar) * eps


class ConvVAE(nn.Module):
    def __init__(self, channels: int = 3, z: int = 32, depth: int = 32, kl_tolerance: float = 0.5):
        super().__init__()
        self.channels, self.z, self.kl_tolerance = channels, z, kl_tolerance
        d = depth
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, d, 4, 2), nn.ReLU(),
            nn.Conv2d(d, 2 * d, 4, 2), nn.ReLU(),
            nn.Conv2d(2 * d, 4 * d, 4, 2), nn.ReLU(),
            nn.Conv2d(4 * d, 8 * d, 4, 2), nn.ReLU(),
            nn.Flatten(),
        )  # fmt: skip
        self.to_stats = nn.Linear(8 * d * 2 * 2, 2 * z)
        self.from_z = nn.Linear(z, 32 * d)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32 * d, 4 * d, 5, 2), nn.ReLU(),
            nn.ConvTranspose2d(4 * d, 2 * d, 5, 2), nn.ReLU(),
            nn.ConvTranspose2d(2 * d, d, 6, 2), nn.ReLU(),
            nn.ConvTranspose2d(d, channels, 6, 2),
        )  # fmt: skip

    @staticmethod
    def to_input(frames: Tensor) -> Tensor:
        """uint8 ``(..., 64, 64, C)`` frames -> float ``(N, C, 64, 64)`` in [0, 1]."""
        if frames.shape[-3:-1] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"the VAE takes 64x64 frames, got {tuple(frames.shape[-3:])}; set --model.image-size 64")
        x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2)
        return x.float() / 255.0

    def encode(self, frames: Tensor) -> Posterior:
        """uint8 frames ``(..., 64, 64, C)`` -> posterior over ``z`` with shape ``(..., z)``."""
        lead = frames.shape[:-3]
        stats = self.to_stats(self.encoder(self.to_input(frames)))
        mean, logvar = stats.chunk(2, -1)
        return Posterior(mean.reshape(*lead, self.z), logvar.clamp(-10, 5).reshape(*lead, self.z))

    def decode(self, z: Tensor) -> Tensor:
        """``(..., z)`` -> frames ``(..., 64, 64, C)`` as floats in [0, 1]."""
        lead = z.shape[:-1]
        x = self.from_z(z.reshape(-1, self.z))[..., None, None]
        x = torch.sigmoid(self.decoder(x)).permute(0, 2, 3, 1)
        return x.reshape(*lead, *x.shape[1:])

    def terms(self, frames: Tensor, generator=None) -> dict[str, Tensor]:
        """Unreduced ELBO terms per image of uint8 frames ``(N, 64, 64, C)``: summed squared error,
        and the KL to N(0, I) not pushed below ``kl_tolerance * z`` nats; each ``(N,)``."""
        post = self.encode(frames)
        recon = self.decode(post.sample(generator))
        target = self.to_input(frames).permute(0, 2, 3, 1)
        kl = 0.5 * (post.mean.square() + post.logvar.exp() - 1 - post.logvar).sum(-1)
        return {"recon": (recon - target).square().sum((1, 2, 3)), "kl": kl.clamp_min(self.kl_tolerance * self.z)}

    def loss(self, frames: Tensor, generator=None) -> tuple[Tensor, dict[str, Tensor]]:
        """The mean ELBO terms of :meth:`terms`, summed, and each of them."""
        terms = {k: v.mean() for k, v in self.terms(frames, generator).items()}
        return terms["recon"] + terms["kl"], {k: v.detach() for k, v in terms.items()}


def reconstruction_grid(vae: ConvVAE, frames: Tensor) -> Tensor:
    """Rows of real frames over their reconstructions (posterior means), uint8 ``(H, W, C)``."""
    with torch.no_grad():
        recon = (vae.decode(vae.encode(frames).mean) * 255).round().to(torch.uint8)
    top = torch.cat(list(frames), 1)
    bottom = torch.cat(list(recon), 1)
    return torch.cat([top, bottom], 0)

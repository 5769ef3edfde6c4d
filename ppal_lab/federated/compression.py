"""Update compression for federated averaging: what a site sends instead of its float32 model.

A site encodes its *update* (local model minus the model it started from) with a :class:`Codec` and
sends the encoded arrays; the orchestrator decodes them and adds the result to the model it sent.
Encoding runs after DP-SGD, so it is post-processing: the site's privacy guarantee is unchanged.

Codecs (``Codec.method``):

* ``"none"`` — the update as float32 (``4 d`` bytes);
* ``"int8"`` — unbiased stochastic rounding to ``2^(bits-1) - 1`` levels of the largest magnitude
  (QSGD-style, Alistarh et al. 2017): one float32 scale and one signed integer per value, stored in
  the smallest NumPy integer type that holds ``bits`` bits (int8 up to 8 bits, int16 up to 16);
* ``"topk"`` — the ``fraction`` largest entries of update + residual, as int32 indices and float32
  values; the rest stays at the site as its residual and is added to the next update (error
  feedback, Stich et al. 2018), so no part of an update is lost, only delayed.

The residual and the rounding's random stream are the site's (:class:`SiteEncoder`); the orchestrator
sees only the encoded arrays, whose ``nbytes`` are the payload (:func:`payload_bytes`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_real

__all__ = ["CODECS", "Codec", "SiteEncoder", "codec_rng", "payload_bytes"]

CODECS = ("none", "int8", "topk")


@dataclass(frozen=True)
class Codec:
    """How sites encode their updates (module docstring): ``method`` of :data:`CODECS`, ``bits`` per
    quantized value (2..16), ``fraction`` of the coordinates a top-k update sends (0, 1]."""

    method: str = "none"
    bits: int = 8
    fraction: float = 0.1

    def __post_init__(self) -> None:
        check_choice("compression", self.method, CODECS)
        check_int("quant_bits", self.bits, 2, 16)
        check_real("topk_fraction", self.fraction, 0.0, 1.0, low_open=True)

    def to_dict(self) -> dict:
        return {"method": self.method, "bits": int(self.bits), "fraction": float(self.fraction)}

    def encode(self, delta: np.ndarray, residual: np.ndarray | None, rng: np.random.Generator
               ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """``(arrays to send, the site's new residual)`` for the update ``delta`` (1-D)."""
        delta = np.asarray(delta, dtype=np.float64).ravel()
        if self.method == "int8":
            levels = 2 ** (self.bits - 1) - 1
            scale = float(np.abs(delta).max()) or 1.0
            v = delta / scale * levels
            low = np.floor(v)
            q = low + (rng.random(v.size) < v - low)  # round up with probability = the remainder
            dtype = np.int8 if self.bits <= 8 else np.int16
            return {"q": q.astype(dtype), "scale": np.array([scale], dtype=np.float32)}, residual
        if self.method == "topk":
            full = delta if residual is None else delta + residual
            k = max(1, math.ceil(self.fraction * full.size))
            keep = np.sort(np.argsort(-np.abs(full), kind="stable")[:k]).astype(np.int32)
            values = full[keep].astype(np.float32)
            sent = np.zeros_like(full)
            sent[keep] = values  # what the orchestrator will decode, float32 rounding included
            return {"index": keep, "value": values}, full - sent
        return {"delta": delta.astype(np.float32)}, residual

    def decode(self, arrays: dict[str, np.ndarray], d: int) -> np.ndarray:
        """The update the orchestrator reconstructs from a site's arrays (float64, length ``d``)."""
        if self.method == "int8":
            levels = 2 ** (self.bits - 1) - 1
            return arrays["q"].astype(np.float64) * float(arrays["scale"][0]) / levels
        if self.method == "topk":
            out = np.zeros(d)
            out[arrays["index"]] = arrays["value"]
            return out
        if arrays["delta"].size != d:
            raise ParameterError("delta", arrays["delta"].size, f"{d} values")
        return arrays["delta"].astype(np.float64)

    def rebuild(self, start: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The orchestrator's copy of the site's local model: ``start`` plus the decoded update
        (float32, like the models; both engines call this, so they agree bit for bit)."""
        start = np.asarray(start)
        return (start.astype(np.float64) + self.decode(arrays, start.size)).astype(np.float32)



def payload_bytes(arrays: dict[str, np.ndarray]) -> int:
    """Bytes of the encoded arrays (what the codec puts on the wire; framing not included)."""
    return int(sum(a.nbytes for a in arrays.values()))


def codec_rng(seed: int, site: int) -> np.random.Generator:
    """Site ``site``'s stream for stochastic rounding: a child of its stream of the run's seed
    (:func:`~ppal_lab.federated.protocol.seed_streams`) that no other draw uses, so compression does
    not shift the site's other random draws."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(site + 1, 0)))


@dataclass
class SiteEncoder:
    """A site's side of a codec: its residual and its rounding stream (both stay at the site)."""

    codec: Codec
    rng: np.random.Generator
    residual: np.ndarray | None = field(default=None, repr=False)

    def encode(self, local: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]:
        """Encode the update ``local - start`` and keep the new residual."""
        arrays, self.residual = self.codec.encode(np.asarray(local, dtype=np.float64)
                                                  - np.asarray(start, dtype=np.float64),
                                                  self.residual, self.rng)
        return arrays

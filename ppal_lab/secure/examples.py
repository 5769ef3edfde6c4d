"""Example party functions for :func:`ppal_lab.secure.twoparty.run_parties`.

They live in a module (not in a notebook or a test) because spawned parties must be able to import
them. Each takes ``rank`` first; private inputs arrive through ``party_args``, so a party only ever
holds its own data.
"""
from __future__ import annotations

import os

import torch

from ppal_lab.secure.crypten_compat import crypten, load_trusted


def _share(own: dict, name: str, src: int, rank: int, shape):
    """Secret-share ``own[name]`` held by party ``src``; the others only know its (public) shape."""
    plain = own[name] if rank == src else torch.empty(shape)
    return crypten.cryptensor(plain, src=src)


def private_arithmetic(rank: int, x_shape, w_shape, own: dict, save_dir: str | None = None) -> dict:
    """Party 0 holds ``x``; party 1 holds ``y`` (same shape as x) and ``W``. Reveal a few results.

    Returns the revealed plaintext of ``x*y + x``, ``x @ W``, ``relu(x - y)`` and ``x > y``, and
    ``"my share of x"``: the random-looking int64 ring elements this party actually holds. With
    ``save_dir`` each party also saves its share of ``x*y`` with ``crypten.save`` and loads it back with
    :func:`~ppal_lab.secure.crypten_compat.load_trusted` (returned as ``"x*y reloaded"``).
    """
    x = _share(own, "x", 0, rank, x_shape)
    y = _share(own, "y", 1, rank, x_shape)
    w = _share(own, "W", 1, rank, w_shape)
    xy = x * y
    out = {
        "x*y+x": (xy + x).get_plain_text(),
        "x@W": x.matmul(w).get_plain_text(),
        "relu(x-y)": (x - y).relu().get_plain_text(),
        "x>y": (x > y).get_plain_text(),
        "my share of x": x.share.clone(),
    }
    if save_dir is not None:
        path = os.path.join(save_dir, f"share-{rank}.pt")
        crypten.save(xy, path)  # each party writes its own share (crypten.save ends with a barrier)
        out["x*y reloaded"] = load_trusted(path).get_plain_text()
    return out


def failing_party(rank: int, bad_rank: int) -> None:
    """Party ``bad_rank`` raises at once; the others wait for a reveal that can never complete."""
    if rank == bad_rank:
        raise ValueError(f"party {rank} refuses to take part")
    crypten.cryptensor(torch.ones(3), src=0).get_plain_text()


def deserting_party(rank: int) -> str:
    """Rank 1 returns without sending anything; rank 0 waits forever for a tensor from rank 1."""
    if rank == 0:
        crypten.comm.get().recv(torch.zeros(1), src=1)
    return "done"


def crashing_party(rank: int, exit_code: int) -> None:
    """Rank 1 dies abruptly (``os._exit``) without reporting; rank 0 waits for a reveal."""
    if rank == 1:
        os._exit(exit_code)
    crypten.cryptensor(torch.ones(3), src=0).get_plain_text()


def sigmoid_party(rank: int, xs, precision_bits: int) -> dict:
    """Party 0 holds ``xs``; both compute :func:`ppal_lab.secure.secure_sigmoid.secure_sigmoid` and
    CrypTen's own ``sigmoid`` on its shares; returns both, revealed."""
    from ppal_lab.secure.fixed_point import decode_exact
    from ppal_lab.secure.secure_sigmoid import secure_sigmoid

    crypten.cfg.encoder.precision_bits = int(precision_bits)
    x = _share({"xs": xs}, "xs", 0, rank, tuple(xs.shape))
    scale = 2 ** int(precision_bits)
    return {"ours": decode_exact(secure_sigmoid(x).reveal(), scale),
            "crypten": decode_exact(x.sigmoid().reveal(), scale)}


def passes_party(rank: int, params, x, g, precision_bits: int = 18) -> dict:
    """Party 0 holds the stacked network ``params`` and the upstream gradient ``g``, party 1 the input ``x``;
    both run :func:`ppal_lab.secure.mlp_on_shares.forward` and :func:`~ppal_lab.secure.mlp_on_shares.backward`
    on shares. Returns the revealed last pre-activation and gradients, and the number of compared elements."""
    from ppal_lab.secure.fixed_point import decode_exact
    from ppal_lab.secure.mlp_on_shares import backward, forward, tally

    crypten.cfg.encoder.precision_bits = int(precision_bits)
    scale, before = 2 ** int(precision_bits), tally["comparisons"]
    w = [_share({"w": p}, "w", 0, rank, tuple(p.shape)) for p in params]
    xs = _share({"x": x}, "x", 1, rank, tuple(x.shape))
    gs = _share({"g": g}, "g", 0, rank, tuple(g.shape))
    z, cache = forward(w, xs)
    grads = backward(w, cache, gs)
    return {"z": decode_exact(z.reveal(), scale), "grads": [decode_exact(d.reveal(), scale) for d in grads],
            "comparisons": tally["comparisons"] - before}


def reveal_probe(rank: int, mine) -> dict:
    """Party 0 holds ``x``, party 1 holds ``y`` (``mine``, same shape); ``z = x + y`` is opened to party 1
    twice -- with :func:`~ppal_lab.secure.twoparty.reveal_to` and with ``torch.distributed.reduce``
    (what CrypTen's ``reveal(dst=1)`` runs) -- while party 0 records what it receives. Whatever party 0
    learns of ``z`` gives away party 1's private ``y = z - x``. Returns the opened ring elements (party
    1), the tensors party 0 received during ``reveal_to``, and party 0's buffer after the reduce."""
    import torch
    import torch.distributed as dist

    from ppal_lab.secure.twoparty import reveal_to

    comm = crypten.comm.get()
    mine = torch.as_tensor(mine, dtype=torch.float32)
    x = crypten.cryptensor(mine if rank == 0 else torch.empty(mine.shape), src=0)
    y = crypten.cryptensor(mine if rank == 1 else torch.empty(mine.shape), src=1)
    z = x + y
    received = []
    for name in ("recv", "irecv", "broadcast", "all_reduce", "reduce", "all_gather", "gather", "scatter"):
        original = getattr(comm, name)

        def spy(*args, _original=original, **kwargs):
            out = _original(*args, **kwargs)
            received.append(out)
            return out

        setattr(comm, name, spy)
    opened = reveal_to(z, 1)
    buffer = z.share.clone()
    dist.reduce(buffer, 1, group=comm.main_group)
    return {"opened": opened, "received_during_reveal_to": received, "buffer_after_reduce": buffer,
            "scale": z.encoder.scale}

"""The sign comparison behind every secure ReLU (:func:`ppal_lab.secure.mlp_on_shares.is_negative`): exact
against the plaintext sign and CrypTen's own ``lt(0)``, at a fraction of CrypTen's bytes and no more
rounds; and the truncation watch (:func:`~ppal_lab.secure.mlp_on_shares.watch_truncations`) that the
secure MADDPG's wrap check reads."""
from __future__ import annotations

import torch

from ppal_lab.secure import run_parties


def sign_party(rank: int, x: torch.Tensor, bits: int = 64) -> dict:
    from ppal_lab.secure.crypten_compat import crypten
    from ppal_lab.secure.mlp_on_shares import is_negative

    crypten.cfg.encoder.precision_bits = 18
    z = crypten.cryptensor(x if rank == 0 else torch.empty(x.shape), src=0)
    comm = crypten.comm.get()
    s0 = comm.get_communication_stats()
    ours = is_negative(z, bits=bits).get_plain_text()
    s1 = comm.get_communication_stats()
    theirs = z.lt(0).get_plain_text()
    s2 = comm.get_communication_stats()
    return {"ours": ours, "theirs": theirs, "ours_bytes": s1["bytes"] - s0["bytes"],
            "theirs_bytes": s2["bytes"] - s1["bytes"], "ours_rounds": s1["rounds"] - s0["rounds"],
            "theirs_rounds": s2["rounds"] - s1["rounds"]}


def watch_party(rank: int, x: torch.Tensor, wrap: int) -> list:
    from ppal_lab.secure.crypten_compat import crypten
    from ppal_lab.secure.mlp_on_shares import forward, watch_truncations

    crypten.cfg.encoder.precision_bits = 18
    z = crypten.cryptensor(x if rank == 0 else torch.empty(x.shape), src=0)
    w = crypten.cryptensor(torch.full((1, 4, 3), 0.5) if rank == 0 else torch.empty(1, 4, 3), src=0)
    b = crypten.cryptensor(torch.zeros(1, 1, 3) if rank == 0 else torch.empty(1, 1, 3), src=0)
    with watch_truncations() as sums:
        forward([w, b], z, wrap_at=((0, 0, 0), wrap) if wrap else None)
    from ppal_lab.secure.fixed_point import decode_exact

    opened = crypten.mpc.MPCTensor.from_shares(torch.stack(sums)).reveal()     # test only: opened
    return decode_exact(opened, 2 ** 18).tolist()


def test_is_negative_is_exact_and_cheaper_than_cryptens_comparison():
    torch.manual_seed(0)
    edges = torch.tensor([0.0, 2.0 ** -18, -(2.0 ** -18), 3 * 2.0 ** -18, 4000.0, -4000.0, 1e5, -1e5, 0.0, 0.0])
    x = torch.cat([torch.randn(2000) * 100, torch.randn(500) * 1e-3, edges])     # 2510 = 10 x 251
    out = run_parties(sign_party, 2, args=(x.view(10, 1, -1),), timeout=180, verbose_comm=True)[0]
    assert torch.equal(out["ours"], out["theirs"])
    encoded = (x * 2 ** 18).long()                     # the sign of the fixed-point value (truncated)
    assert torch.equal(out["ours"].view(-1), (encoded < 0).float())
    assert out["ours_rounds"] <= out["theirs_rounds"]
    assert out["ours_bytes"] < 0.4 * out["theirs_bytes"]


def test_the_sign_in_the_ring_of_2_to_the_32_is_exact_below_its_bound_for_fewer_bytes_and_rounds():
    """At 18 fractional bits the 32-bit ring holds |z| < 2^13 = 8192 exactly; beyond, the sign is that of
    z mod 2^32 (3 * 2^13 reads as negative), the price of the smaller ring, stated where it is used."""
    torch.manual_seed(1)
    bound = 2.0 ** 13
    edges = torch.tensor([0.0, 2.0 ** -18, -(2.0 ** -18), bound - 0.5, -bound, 8000.0, -8000.0, 0.0])
    x = torch.cat([torch.randn(2000) * 100, torch.randn(500) * 1e-3, edges, torch.tensor([3 * bound, 2.5 * bound])])
    full = run_parties(sign_party, 2, args=(x.view(10, 1, -1), 64), timeout=180, verbose_comm=True)[0]
    small = run_parties(sign_party, 2, args=(x.view(10, 1, -1), 32), timeout=180, verbose_comm=True)[0]
    encoded = (x * 2 ** 18).long()                  # CrypTen's encoding truncates toward zero
    inside = (encoded >= -(2 ** 31)) & (encoded < 2 ** 31)          # signed 32-bit
    assert inside.sum() == x.numel() - 2
    assert torch.equal(small["ours"].view(-1)[inside].float(), (encoded[inside] < 0).float())
    assert small["ours"].view(-1)[~inside].tolist() == [1.0, 0.0]        # 3*2^31 -> 2^31 < 0; 2.5*2^31 -> >= 0
    assert small["ours_rounds"] == full["ours_rounds"] - 1                # log2(32) levels, not 6
    assert small["ours_bytes"] < 0.65 * full["ours_bytes"]       # the ANDs' share; B2A unchanged


def test_a_wrap_moves_its_truncations_checksum_by_2_to_the_28():
    x = torch.rand(1, 6, 4)
    clean, wrapped = (run_parties(watch_party, 2, args=(x, wrap), timeout=180)[0] for wrap in (0, 2 ** 46))
    assert len(clean) == 1 and abs(clean[0]) < 100       # one truncation (the product); ordinary checksum
    assert abs(abs(wrapped[0] - clean[0]) - 2 ** 28) < 1

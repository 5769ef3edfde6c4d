"""Speed of the supply-chain game and of MADDPG updates: vectorized paths against plain loops.

Three comparisons, each timed with interleaved repeats in one process (medians reported), one torch
thread:

1. **game**: ``n_episodes`` random-action episodes through the PettingZoo ``SupplyChainEnv`` (one
   episode at a time, dict API) against ``SupplyChainVec`` stepping all of them at once; the rewards of
   the two are checked to be identical.
2. **update**: one MADDPG update of one run with ``ppal_lab.marl.maddpg`` (hand-written passes and Adam)
   against the same update written the usual PyTorch way (``torch.nn`` modules, autograd,
   ``torch.optim.Adam``), from the same weights and minibatch; the updated weights are checked to agree.
3. **population**: ``runs`` independent runs updated as one batch of networks against ``runs`` separate
   learners updated one after another.

Usage::

    python benchmarks/bench_maddpg.py --episodes 512 --runs 10 --repeats 7

Writes ``data/results/bench_maddpg.json`` atomically; exits 1 if a check fails.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppal_lab.compendium.errors import check_range  # noqa: E402
from ppal_lab.marl.maddpg import ACTOR_IN, CRITIC_IN, MADDPG, MADDPGConfig, input_masks  # noqa: E402
from ppal_lab.marl.networks import Adam  # noqa: E402
from ppal_lab.compendium.results import write_json_atomic  # noqa: E402
from ppal_lab.marl.supply_game import AGENTS, TIME_COL, GameConfig, SupplyChainEnv, SupplyChainVec  # noqa: E402


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=512, help="episodes for the game comparison, >= 1")
    ap.add_argument("--runs", type=int, default=10, help="runs for the population comparison, >= 2")
    ap.add_argument("--updates", type=int, default=50, help="updates per timed repeat, >= 1")
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats, >= 3")
    ap.add_argument("--hidden", type=int, default=128, help="hidden units (Appendix G: 128)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "results" / "bench_maddpg.json")
    args = ap.parse_args(argv)
    check_range("episodes", args.episodes, 1)
    check_range("runs", args.runs, 2)
    check_range("updates", args.updates, 1)
    check_range("repeats", args.repeats, 3)
    check_range("hidden", args.hidden, 1)
    check_range("seed", args.seed, 0)
    return args


def _median_times(fns: dict, repeats: int) -> dict:
    times = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


# ---- 1. the game ----------------------------------------------------------------------------------
def bench_game(args) -> dict:
    cfg = GameConfig()
    rng = np.random.default_rng(args.seed)
    n, T = args.episodes, cfg.horizon
    acts = rng.random((n, T, 2, 2)) * cfg.action_high()
    seeds = np.arange(n) + args.seed
    u = np.stack([np.random.default_rng(s).random(6) for s in seeds])
    eps = np.stack([_env_shocks(s, T) for s in seeds])
    out = {}

    def loop():
        env, rewards = SupplyChainEnv(cfg), np.zeros((n, T, 2))
        for e in range(n):
            env.reset(seed=int(seeds[e]))
            for t in range(T):
                _, rew, *_ = env.step({a: acts[e, t, i] for i, a in enumerate(AGENTS)})
                rewards[e, t] = [rew[a] for a in AGENTS]
        out["loop"] = rewards

    def vectorized():
        vec, rewards = SupplyChainVec(cfg), np.zeros((n, T, 2))
        vec.reset(u)
        for t in range(T):
            _, rewards[:, t], _, _ = vec.step(acts[:, t], eps[:, t])
        out["vec"] = rewards

    med = _median_times({"pettingzoo_loop": loop, "vectorized": vectorized}, args.repeats)
    same = bool(np.allclose(out["loop"], out["vec"], rtol=1e-6, atol=1e-4))
    return {"episodes": n, "steps_per_episode": T, **{f"{k}_s": v for k, v in med.items()},
            "speedup": med["pettingzoo_loop"] / med["vectorized"], "same_rewards": same}


def _env_shocks(seed: int, T: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    g.random(6)                      # the environment draws its initial state first
    return g.standard_normal(T)


# ---- 2. one update: hand-written vs torch.nn + autograd ------------------------------------------------
class AutogradMADDPG:
    """The same MADDPG update written the usual PyTorch way, for one run."""

    def __init__(self, learner: MADDPG):
        c, H = learner.cfg, learner.cfg.hidden
        self.cfg = c
        masks = [input_masks(learner.runs[0][1], player=i) for i in range(2)]  # NDS critics differ per player
        self.mask_a = [torch.tensor(m[0], dtype=torch.float32) for m in masks]
        self.mask_c = [torch.tensor(m[1], dtype=torch.float32) for m in masks]
        self.nets = {name: [self._module(getattr(learner, name), k, sizes) for k in range(2)]
                     for name, sizes in (("actor", (ACTOR_IN, H, H, 2)), ("critic", (CRITIC_IN, H, H, 1)),
                                         ("actor_target", (ACTOR_IN, H, H, 2)),
                                         ("critic_target", (CRITIC_IN, H, H, 1)))}
        self.opt_c = torch.optim.Adam([p for m in self.nets["critic"] for p in m.parameters()], lr=c.lr_critic)
        self.opt_a = torch.optim.Adam([p for m in self.nets["actor"] for p in m.parameters()], lr=c.lr_actor)

    @staticmethod
    def _module(net, k, sizes):
        layers = []
        for j, (fin, fout) in enumerate(zip(sizes[:-1], sizes[1:])):
            lin = torch.nn.Linear(fin, fout)
            with torch.no_grad():
                lin.weight.copy_(net.params[2 * j][k].T)
                lin.bias.copy_(net.params[2 * j + 1][k, 0])
            layers += [lin, torch.nn.ReLU()]
        return torch.nn.Sequential(*layers[:-1])

    def update(self, batch) -> None:
        c, nets = self.cfg, self.nets
        o, a, r, o2 = (batch[k][0] for k in ("obs", "act", "rew", "next"))
        a_in = lambda obs, i: torch.cat([obs[:, i], obs[:, 1 - i]], -1) * self.mask_a[i]  # noqa: E731
        c_in = lambda obs, act, i: torch.cat([obs[:, i], act[:, i], obs[:, 1 - i], act[:, 1 - i]], -1) * self.mask_c[i]  # noqa: E731,E501
        with torch.no_grad():
            a2 = torch.stack([torch.sigmoid(nets["actor_target"][i](a_in(o2, i))) for i in range(2)], 1)
            going_on = (o2[:, 0, TIME_COL:TIME_COL + 1] > 0).float()  # no bootstrap past an episode's end
            y = [r[:, i:i + 1] + c.gamma * going_on * nets["critic_target"][i](c_in(o2, a2, i)) for i in range(2)]
        self.opt_c.zero_grad()
        sum(torch.nn.functional.mse_loss(nets["critic"][i](c_in(o, a, i)), y[i]) for i in range(2)).backward()
        self.opt_c.step()
        total = 0.0
        for i in range(2):
            z = nets["actor"][i](a_in(o, i))
            a_new = a.clone()
            a_new[:, i] = torch.sigmoid(z)
            total = total - nets["critic"][i](c_in(o, a_new, i)).mean() + c.actor_reg * (z ** 2).mean()
        self.opt_a.zero_grad()
        total.backward()
        self.opt_a.step()
        with torch.no_grad():
            for online, target in (("actor", "actor_target"), ("critic", "critic_target")):
                for i in range(2):
                    for p, q in zip(nets[online][i].parameters(), nets[target][i].parameters()):
                        q.lerp_(p, c.tau)


def _filled(seeds, modes, cfg) -> MADDPG:
    """A learner whose buffer holds one round of pre-training, with its Adam state started afresh."""
    learner = MADDPG(seeds, modes, cfg=cfg)
    learner.play("pretrain", cfg.pretrain_envs, cfg.pretrain_envs, noise=0.3, learn=True)
    learner.actor_opt = Adam(learner.actor.flat, cfg.lr_actor, cfg.adam_betas, cfg.adam_eps)
    learner.critic_opt = Adam(learner.critic.flat, cfg.lr_critic, cfg.adam_betas, cfg.adam_eps)
    return learner


def bench_update(args) -> dict:
    cfg = MADDPGConfig(hidden=args.hidden, buffer_size=10_000, pretrain_envs=16)
    ours = _filled([args.seed], ["ede"], cfg)
    ref = AutogradMADDPG(ours)
    batch = ours.sample()

    def mine():
        for _ in range(args.updates):
            ours.critic_step(batch, ours.critic_targets(batch))
            ours.actor_step(batch)
            ours.soft_update()

    def theirs():
        for _ in range(args.updates):
            ref.update(batch)

    # agreement after one update from identical states
    check = _filled([args.seed], ["ede"], cfg)
    check_ref = AutogradMADDPG(check)
    b = check.sample()
    check.critic_step(b, check.critic_targets(b))
    check.actor_step(b)
    check.soft_update()
    check_ref.update(b)
    err = _max_weight_error(check, check_ref)
    med = _median_times({"ours": mine, "autograd_nn_adam": theirs}, args.repeats)
    return {"hidden": args.hidden, "batch_size": cfg.batch_size, "updates_per_repeat": args.updates,
            "ours_ms_per_update": 1e3 * med["ours"] / args.updates,
            "autograd_ms_per_update": 1e3 * med["autograd_nn_adam"] / args.updates,
            "ratio_ours_over_autograd": med["ours"] / med["autograd_nn_adam"],
            "max_weight_difference_after_one_update": err}


def _max_weight_error(learner: MADDPG, ref: AutogradMADDPG) -> float:
    err = 0.0
    for name, nets in ref.nets.items():
        for k in range(2):
            mine = getattr(learner, name).select(k)
            theirs = [t for lin in nets[k] if isinstance(lin, torch.nn.Linear) for t in (lin.weight.T, lin.bias)]
            for m, t in zip(mine, theirs):
                err = max(err, float((m.reshape(t.shape) - t.detach()).abs().max()))
    return err


# ---- 3. many runs as one batch vs one after another ---------------------------------------------------
def bench_population(args) -> dict:
    cfg = MADDPGConfig(hidden=args.hidden, buffer_size=10_000, pretrain_envs=16)
    seeds = list(range(args.seed, args.seed + args.runs))
    together = _filled(seeds, ["ede"], cfg)
    apart = [_filled([s], ["ede"], cfg) for s in seeds]

    def batched():
        for _ in range(args.updates):
            together.update()

    def separate():
        for _ in range(args.updates):
            for learner in apart:
                learner.update()

    med = _median_times({"batched": batched, "separate": separate}, args.repeats)
    return {"runs": args.runs, "updates_per_repeat": args.updates,
            "batched_ms_per_run_update": 1e3 * med["batched"] / (args.updates * args.runs),
            "separate_ms_per_run_update": 1e3 * med["separate"] / (args.updates * args.runs),
            "speedup": med["separate"] / med["batched"]}


def main(argv=None) -> int:
    args = _parse(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    record = {"benchmark": "bench_maddpg", "description": __doc__.split("\n\n")[0],
              "parameters": vars(args) | {"out": str(args.out)},
              "game": bench_game(args), "update": bench_update(args), "population": bench_population(args),
              "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__},
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "load_average": list(os.getloadavg())}}
    record["wall_time_s"] = time.perf_counter() - t0
    g, u, p = record["game"], record["update"], record["population"]
    print(f"game: {g['episodes']} episodes  PettingZoo loop {g['pettingzoo_loop_s']:.3f} s  vectorized "
          f"{g['vectorized_s']:.4f} s  speed-up {g['speedup']:.0f}x  same rewards {g['same_rewards']}")
    print(f"update (hidden {u['hidden']}): ours {u['ours_ms_per_update']:.2f} ms  torch.nn+autograd+Adam "
          f"{u['autograd_ms_per_update']:.2f} ms  ratio {u['ratio_ours_over_autograd']:.2f}  "
          f"max weight difference {u['max_weight_difference_after_one_update']:.1e}")
    print(f"population of {p['runs']}: batched {p['batched_ms_per_run_update']:.2f} ms/run-update  separate "
          f"{p['separate_ms_per_run_update']:.2f} ms  speed-up {p['speedup']:.2f}x")
    write_json_atomic(args.out, record)
    print(f"wrote {args.out} (load average {record['machine']['load_average'][0]:.1f})")
    ok = g["same_rewards"] and u["max_weight_difference_after_one_update"] < 1e-4
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

r"""The federated protocol as a Flower app: the orchestrator is a ``ServerApp``, every site a ``ClientApp``
that holds its own data, budget and model; the protocol's steps travel as Flower messages.

There is one implementation of the protocol. The orchestrator's loop is
:class:`~ppal_lab.federated.protocol.FederatedProtocol` driven by
:func:`~ppal_lab.federated.orchestrator.run_protocol`; a site is a
:class:`~ppal_lab.federated.participant.Participant` built by
:func:`~ppal_lab.federated.orchestrator.build_site`. The in-process engine calls the participants
directly (:class:`~ppal_lab.federated.protocol.LocalSites`); here :class:`FlowerSites` has the same
methods and sends each step as a message whose ClientApp handler calls the same participant method:

==================  =====================================  ======================================
message type        orchestrator sends                     site replies
==================  =====================================  ======================================
``query.hello``     nothing                                its site index and pool size
``query.setup``     settings, plan, initial-label count,   its public counts
                    public feature scaling
``train``           global (or its edge's) parameters,     DP-SGD parameters, or their encoded
                    round                                  update (or nothing)
``query.propose``   global parameters, k, epsilons         its noisy proposal scores (or nothing)
``query.label``     its allocation, random or not          its public counts
``query.report``    nothing                                epsilon spent, ledger, steps, log
==================  =====================================  ======================================

With a codec (``compression`` setting, :mod:`ppal_lab.federated.compression`) a site replies to
``train`` with its *encoded* update (int8 values and a scale, or top-k indices and values; its
residual and rounding stream stay in its state), so the payload bytes counted here are the real
compressed size. Hierarchical aggregation (``edges``, ``kappa``) is the orchestrator's affair: the
edges are logical tiers inside this ServerApp, each site simply receives its edge's model.

"Public counts" are labels bought, labelled-set size and items never inspected: numbers the
orchestrator allocated itself. No item identity, feature, label or exact score leaves a site, so the
"who learns what" analysis of :mod:`ppal_lab.federated.orchestrator` holds unchanged; the end-of-run
report is the site's own accounting, published with the results.

A ClientApp may run in a fresh process for every message (Flower's deployment engine) or in any Ray
worker (its simulation engine), so a site keeps its state in Flower's ``context.state``: it rebuilds its
participant from its data and restores :meth:`Participant.get_state` before each step, and saves it
after. Replies are ordered by site index (each node's ``site-index``, in simulation its partition id),
a fixed map of node ids, before aggregation, so the same seed gives the same model and ledgers as
the in-process engine (tested).

Where a site's data lives: ``node_config["data-file"]`` (an ``.npz`` with ``X`` and ``y``; deployment)
or ``site_<index>.npz`` in the folder given to :func:`site_app` (simulation).

Randomness: a site draws its initial labels, Poisson batches and all its DP noise from its stream of
the run's seed, as in the in-process engine, so runs are reproducible and comparable. That seed is in
the run config, which the orchestrator writes: in a real consortium every site sets its own secret
``node_config["site-seed"]``, or the orchestrator could regenerate the site's noise and remove it. The orchestrator's test
set: ``run_config["test-file"]`` (deployment) or the arrays given to :func:`orchestrator_app`.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

# no usage statistics leave the machine; set before Flower or Ray are imported
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402

from ppal_lab.compendium.errors import ParameterError  # noqa: E402
from ppal_lab.federated.compression import Codec, SiteEncoder, codec_rng, payload_bytes  # noqa: E402
from ppal_lab.federated.orchestrator import (FederatedResult, _codec, _scaling, _settings,  # noqa: E402
                                             _validate, build_site, run_protocol)
from ppal_lab.federated.participant import Participant  # noqa: E402
from ppal_lab.federated.protocol import _per_site, seed_streams  # noqa: E402
from ppal_lab.federated.training import TrainingPlan, _load_vector, make_model  # noqa: E402

__all__ = ["FlowerRun", "FlowerSites", "SETTINGS", "orchestrator_app", "run_flower_simulation",
           "settings_from_run_config", "site_app", "write_site_files"]

HELLO, SETUP, TRAIN, PROPOSE, LABEL, REPORT = ("query.hello", "query.setup", "train", "query.propose",
                                               "query.label", "query.report")
#: the run settings (keyword arguments of :func:`~ppal_lab.federated.run_federated_al` without data)
SETTINGS = ("label_budget", "batch_size", "strategy", "epsilon", "delta", "query_share", "model",
            "local_epochs", "seed", "sample_rate", "lr", "max_grad_norm", "hidden", "initial_labels",
            "proposals", "compression", "quant_bits", "topk_fraction", "edges", "kappa")


# ----------------------------------------------------------------------------------------------
# messages
# ----------------------------------------------------------------------------------------------
def _pack(arrays: dict[str, np.ndarray] | None = None, **config: Any) -> RecordDict:
    """A message body: numpy arrays in an ArrayRecord, everything else as JSON in a ConfigRecord."""
    content = RecordDict({"config": ConfigRecord({"json": json.dumps(config)})})
    if arrays:
        content["arrays"] = ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()})
    return content


def _unpack(content: RecordDict) -> tuple[dict[str, np.ndarray], dict]:
    arrays = ({k: a.numpy() for k, a in content["arrays"].items()} if "arrays" in content else {})
    return arrays, json.loads(content["config"]["json"])


def _size(content: RecordDict) -> int:
    """Payload bytes of a message body (arrays and configuration; Flower's framing not included)."""
    return sum(record.count_bytes() for record in content.values())


# ----------------------------------------------------------------------------------------------
# the site: a ClientApp
# ----------------------------------------------------------------------------------------------
def _site_index(context: Context) -> int:
    return int(context.node_config.get("site-index", context.node_config.get("partition-id", -1)))


def _site_data(context: Context, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The site's own pool: ``node_config["data-file"]`` or ``<data_dir>/site_<index>.npz``."""
    path = context.node_config.get("data-file")
    if path is None:
        if data_dir is None:
            raise ParameterError("data-file", None, "a node-config entry naming the site's .npz file")
        path = Path(data_dir) / f"site_{_site_index(context)}.npz"
    with np.load(path) as f:
        return np.asarray(f["X"], dtype=np.float64), np.asarray(f["y"], dtype=np.int64)


def _participant(context: Context, data_dir: str | None) -> tuple[Participant, dict]:
    """Rebuild this site's participant from its data and its saved spec and state."""
    spec = pickle.loads(context.state["ppal"]["spec"])
    X, y = _site_data(context, data_dir)
    Xs = ((X - spec["center"]) / spec["scale"]).astype(np.float32)
    v = spec["v"]
    site = Participant(f"site {spec['index']}", Xs, y, spec["initial"],
                       make_model(v["model"], Xs.shape[1], v["n_classes"], v["hidden"], spec["model_seed"]),
                       TrainingPlan(**spec["plan"]), None if v["epsilon"] is None else spec["budget"],
                       np.random.default_rng(0), 0, 0)
    site.set_state(pickle.loads(context.state["ppal"]["state"]))
    return site, spec


def _save(context: Context, site: Participant, spec: dict | None = None) -> None:
    record = context.state["ppal"] if "ppal" in context.state else ConfigRecord()
    if spec is not None:
        record["spec"] = pickle.dumps(spec)
    record["state"] = pickle.dumps(site.get_state())
    context.state["ppal"] = record


def _save_encoder(context: Context, encoder: SiteEncoder) -> None:
    record = context.state["ppal"]
    record["encoder"] = pickle.dumps(encoder)
    context.state["ppal"] = record


def _counts(site: Participant) -> list[int]:
    return [site.n_inspected, site.n_labelled, site.n_unlabelled]


def site_app(data_dir: str | Path | None = None) -> ClientApp:
    """A site as a Flower ``ClientApp`` (one handler per protocol step, each calling the participant).

    ``data_dir``: folder of ``site_<index>.npz`` files (simulation); ``None``: every node names its
    file in ``node_config["data-file"]`` and its index in ``node_config["site-index"]``.
    """
    app = ClientApp()
    data_dir = None if data_dir is None else str(data_dir)

    def step(handler: Callable[[Context, dict, dict], tuple[dict | None, dict]]) -> Callable:
        def run(msg: Message, context: Context) -> Message:
            torch.set_num_threads(1)  # as in the in-process engine: same float paths
            arrays, config = _unpack(msg.content)
            out_arrays, out_config = handler(context, arrays, config)
            return Message(_pack(out_arrays, **out_config), reply_to=msg)
        return run

    @app.query("hello")
    @step
    def hello(context: Context, arrays: dict, config: dict) -> tuple[None, dict]:
        X, _ = _site_data(context, data_dir)
        return None, {"index": _site_index(context), "pool_size": int(X.shape[0])}

    @app.query("setup")
    @step
    def setup(context: Context, arrays: dict, config: dict) -> tuple[None, dict]:
        v, index = config["v"], _site_index(context)
        X, y = _site_data(context, data_dir)
        if y.min() < 0 or y.max() >= v["n_classes"]:
            raise ParameterError("y", f"labels in [{y.min()}, {y.max()}]", f"codes 0..{v['n_classes'] - 1}")
        # this site's stream of the run's seed, as in the in-process engine (reproducible); a real site
        # sets its own secret "site-seed": whoever knows the seed of the DP noise can subtract it
        seed = int(context.node_config.get("site-seed", v["seed"]))
        _, _, site_rngs, torch_seeds = seed_streams(seed, config["n_sites"])
        plan = TrainingPlan(**config["plan"])
        Xs = ((X - arrays["center"]) / arrays["scale"]).astype(np.float32)
        site = build_site(v, index, Xs, y, config["n_initial"], plan, config["model_seed"],
                          site_rngs[index], torch_seeds[index], config["training_off"])
        spec = {"v": v, "index": index, "plan": config["plan"], "model_seed": config["model_seed"],
                "center": arrays["center"], "scale": arrays["scale"], "initial": site.labelled_positions,
                "budget": site.budget}
        _save(context, site, spec)
        codec = Codec(**config.get("codec", {}))
        _save_encoder(context, SiteEncoder(codec, codec_rng(seed, index)))
        return None, {"counts": _counts(site)}

    @app.train()
    @step
    def train(context: Context, arrays: dict, config: dict) -> tuple[dict | None, dict]:
        site, _ = _participant(context, data_dir)
        local = site.local_update(torch.from_numpy(arrays["params"]), config["round"])
        _save(context, site)
        if local is None:
            return None, {"counts": _counts(site)}
        encoder = pickle.loads(context.state["ppal"]["encoder"])
        if encoder.codec.method == "none":
            return {"params": local.numpy()}, {"counts": _counts(site)}
        update = encoder.encode(local.numpy(), arrays["params"])  # the residual stays here
        _save_encoder(context, encoder)
        return update, {"counts": _counts(site)}

    @app.query("propose")
    @step
    def propose(context: Context, arrays: dict, config: dict) -> tuple[dict | None, dict]:
        site, spec = _participant(context, data_dir)
        v = spec["v"]
        model = make_model(v["model"], spec["center"].size, v["n_classes"], v["hidden"], spec["model_seed"])
        _load_vector(model.parameters(), torch.from_numpy(arrays["params"]))
        released = site.propose(model, config["strategy"], config["k"], config.get("epsilon_select"),
                                config.get("epsilon_value"), config["round"])
        _save(context, site)
        return (None if released is None else {"released": released}), {"counts": _counts(site)}

    @app.query("label")
    @step
    def label(context: Context, arrays: dict, config: dict) -> tuple[None, dict]:
        site, _ = _participant(context, data_dir)
        n = int(config["n"])
        site.label_random(n) if config["at_random"] else site.label(n)
        _save(context, site)
        return None, {"counts": _counts(site)}

    @app.query("report")
    @step
    def report(context: Context, arrays: dict, config: dict) -> tuple[None, dict]:
        site, _ = _participant(context, data_dir)
        rep = site.report()
        rep["epsilon_spent"] = None if math.isinf(rep["epsilon_spent"]) else rep["epsilon_spent"]
        return None, {"report": rep, "counts": _counts(site)}

    return app


# ----------------------------------------------------------------------------------------------
# the orchestrator: a ServerApp
# ----------------------------------------------------------------------------------------------
class FlowerSites:
    """The sites as seen from a Flower ``ServerApp``: the site-group methods of
    :class:`~ppal_lab.federated.protocol.LocalSites`, each one Flower message per site.

    On creation it greets the nodes and orders them by the site index each reports (a fixed map of
    node ids); every later list is in that order. ``sent_bytes``/``received_bytes`` count the payload
    per site, ``update_bytes`` the update arrays of the ``train`` replies (as encoded); ``transcript`` lists what the orchestrator received: ``(step, site, array names, config
    names)`` per reply (tests check it against the "who learns what" table).
    """

    def __init__(self, grid: Grid, node_ids: Sequence[int], timeout: float = 600.0) -> None:
        self.grid, self.timeout = grid, timeout
        self.node_ids = list(node_ids)
        self.sent_bytes = np.zeros(len(self.node_ids), dtype=np.int64)
        self.received_bytes = np.zeros(len(self.node_ids), dtype=np.int64)
        self.update_bytes = np.zeros(len(self.node_ids), dtype=np.int64)
        self.bytes_by_step: dict[str, list[int]] = {}  # step -> [sent, received], all sites
        self.codec = Codec()
        self._public = np.zeros((len(self.node_ids), 3), dtype=np.int64)
        self.transcript: list[tuple[str, int, tuple, tuple]] = []
        hello = self._ask(HELLO, [_pack() for _ in self.node_ids])
        index = [c["index"] for _, c in hello]
        if sorted(index) != list(range(len(index))):
            raise ParameterError("site-index", index, f"each of 0..{len(index) - 1} exactly once")
        order = np.argsort(index)
        self.node_ids = [self.node_ids[i] for i in order]
        self.pool_sizes = [int(hello[i][1]["pool_size"]) for i in order]
        self.sent_bytes, self.received_bytes = self.sent_bytes[order], self.received_bytes[order]

    def __len__(self) -> int:
        return len(self.node_ids)

    def _ask(self, step: str, contents: Sequence[RecordDict]) -> list[tuple[dict, dict]]:
        """Send one message to every site; the replies in site order, each ``(arrays, config)``."""
        msgs = [Message(c, nid, step) for c, nid in zip(contents, self.node_ids)]
        sizes = [_size(c) for c in contents]
        self.sent_bytes += sizes
        self.bytes_by_step.setdefault(step, [0, 0])[0] += sum(sizes)
        replies = {r.metadata.src_node_id: r for r in self.grid.send_and_receive(msgs, timeout=self.timeout)}
        missing = [n for n in self.node_ids if n not in replies]
        failed = [(n, replies[n].error.reason) for n in self.node_ids if n in replies and replies[n].has_error()]
        if missing or failed:
            raise RuntimeError(f"{step}: no reply from nodes {missing}; errors {failed}")
        out = []
        for p, n in enumerate(self.node_ids):
            self.received_bytes[p] += _size(replies[n].content)
            self.bytes_by_step[step][1] += _size(replies[n].content)
            arrays, config = _unpack(replies[n].content)
            self.transcript.append((step, p, tuple(sorted(arrays)), tuple(sorted(config))))
            if "counts" in config:
                self._public[p] = config["counts"]
            out.append((arrays, config))
        return out

    def setup(self, v: dict, pl: dict, model_seed: int, initial: np.ndarray) -> "FlowerSites":
        plan = pl["plan"]
        config = {"v": {k: v[k] for k in ("model", "hidden", "n_classes", "epsilon", "delta", "seed")},
                  "n_sites": len(self), "model_seed": int(model_seed), "training_off": pl["training_off"],
                  "plan": {"sample_rate": plan.sample_rate, "local_steps": plan.local_steps, "lr": plan.lr,
                           "max_grad_norm": plan.max_grad_norm, "noise_multiplier": plan.noise_multiplier}}
        self.codec = _codec(v)
        if self.codec.method != "none":  # (older sites need not know about codecs)
            config["codec"] = self.codec.to_dict()
        scaling = {"center": v["center"], "scale": v["scale"]}
        self._ask(SETUP, [_pack(scaling, n_initial=int(n), **config) for n in initial])
        return self

    def public_counts(self) -> np.ndarray:
        return self._public.copy()

    def train(self, params: torch.Tensor | Sequence[torch.Tensor], t: int) -> list[torch.Tensor | None]:
        starts = [p.detach().numpy() for p in _per_site(params, len(self))]
        replies = self._ask(TRAIN, [_pack({"params": p}, round=t) for p in starts])
        out = []
        for i, ((a, _), start) in enumerate(zip(replies, starts)):
            self.update_bytes[i] += payload_bytes(a)
            if not a:
                out.append(None)
            elif "params" in a:
                out.append(torch.from_numpy(a["params"]))
            else:  # an encoded update: decoded here, at the orchestrator
                out.append(torch.from_numpy(self.codec.rebuild(start, a)))
        return out

    def propose(self, model: torch.nn.Module, strategy: str, ks: Sequence[int],
                epsilon_select: float | None, epsilon_value: float | None, t: int) -> list[np.ndarray | None]:
        body = {"params": torch.nn.utils.parameters_to_vector(model.parameters()).detach().numpy()}
        eps = {k: e for k, e in (("epsilon_select", epsilon_select), ("epsilon_value", epsilon_value))
               if e is not None}
        replies = self._ask(PROPOSE, [_pack(body, strategy=strategy, k=int(k), round=t, **eps) for k in ks])
        return [a.get("released") for a, _ in replies]

    def label(self, counts: np.ndarray, at_random: bool) -> None:
        self._ask(LABEL, [_pack(n=int(c), at_random=at_random) for c in counts])
        return None  # item identities stay at the sites

    def report(self) -> list[dict]:
        reports = [c["report"] for _, c in self._ask(REPORT, [_pack() for _ in self.node_ids])]
        for rep in reports:
            rep["epsilon_spent"] = math.inf if rep["epsilon_spent"] is None else rep["epsilon_spent"]
            rep["events"] = [tuple(e) for e in rep["events"]]
        return reports


def _wait_for_nodes(grid: Grid, n_sites: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= n_sites:
            return nodes[:n_sites]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(nodes)} of {n_sites} SuperNodes connected after {timeout:g} s")
        time.sleep(0.5)


def run_on_grid(grid: Grid, settings: dict, X_test: np.ndarray, y_test: np.ndarray, n_sites: int,
                timeout: float = 600.0) -> tuple[FederatedResult, torch.Tensor, FlowerSites]:
    """The orchestrator on a Flower grid: greet ``n_sites`` nodes, check the settings against their
    pool sizes, then :func:`~ppal_lab.federated.orchestrator.run_protocol` with :class:`FlowerSites`."""
    sites = FlowerSites(grid, _wait_for_nodes(grid, n_sites, timeout), timeout)
    kw = {k: settings[k] for k in SETTINGS if k in settings}
    v = _settings(sites.pool_sizes, **{**_DEFAULTS, **kw}, progress=False)
    X_test, y_test = np.asarray(X_test, dtype=np.float64), np.asarray(y_test, dtype=np.int64)
    center, scale = _scaling(settings.get("scaling"), X_test, X_test.shape[1])
    v.update(X_test=X_test, y_test=y_test, center=center, scale=scale,
             n_classes=int(settings.get("n_classes") or y_test.max() + 1))
    result, final = run_protocol(v, sites.pool_sizes,
                                 lambda pl, model_seed, initial: sites.setup(v, pl, model_seed, initial), None)
    return result, final, sites


#: defaults of :func:`~ppal_lab.federated.run_federated_al` for the settings a run config may omit
_DEFAULTS = dict(epsilon=None, delta=1e-5, query_share=0.2, model="logreg", local_epochs=2, seed=0,
                 sample_rate=0.5, lr=2.0, max_grad_norm=0.1, hidden=32, initial_labels=20, proposals=None,
                 compression="none", quant_bits=8, topk_fraction=0.1, edges=None, kappa=1)


def settings_from_run_config(run_config: dict) -> dict:
    """Flower run config (``label-budget = 80``, ``epsilon = 2.0``; ``epsilon = "inf"`` non-private)
    to the settings of :func:`run_on_grid`."""
    out = {}
    for key, value in run_config.items():
        name = key.replace("-", "_")
        if name in SETTINGS:
            out[name] = (None if value in ("inf", "none", "") and name in ("epsilon", "proposals", "edges")
                         else value)
    return out


def orchestrator_app(settings: dict | None = None, X_test: Any = None, y_test: Any = None,
                     n_sites: int | None = None, sink: Callable[..., None] | None = None) -> ServerApp:
    """The orchestrator as a Flower ``ServerApp``.

    Given ``settings`` (and the test set, the number of sites): a simulation whose result goes to
    ``sink(result, final_params, sites)``. Without: a deployment, configured by the run config
    (``test-file`` .npz with ``X``/``y``, ``n-sites``, ``result-file`` for the JSON record, and the
    settings as in :func:`settings_from_run_config`).
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        if settings is not None:
            result, final, sites = run_on_grid(grid, settings, X_test, y_test, n_sites)
            sink(result, final, sites)
            return
        rc = dict(context.run_config)
        with np.load(rc["test-file"]) as f:
            Xt, yt = f["X"], f["y"]
        result, final, sites = run_on_grid(grid, settings_from_run_config(rc), Xt, yt, int(rc["n-sites"]),
                                           float(rc.get("timeout", 600.0)))
        record = dict(result.to_dict(), final_params=final.tolist(), ledgers=result.ledgers,
                      sent_bytes=sites.sent_bytes.tolist(), received_bytes=sites.received_bytes.tolist())
        Path(rc["result-file"]).write_text(json.dumps(record, default=float))

    return app


# Flower's deployment engine loads these (``[tool.flwr.app.components]`` of the app's pyproject.toml)
server_app = orchestrator_app()
client_app = site_app()


# ----------------------------------------------------------------------------------------------
# the simulation engine
# ----------------------------------------------------------------------------------------------
def write_site_files(X: Any, y: Any, partition: Sequence[Any], folder: str | Path) -> list[Path]:
    """Give every site its own pool: ``site_<p>.npz`` (``X``, ``y``) in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for p, rows in enumerate(partition):
        path = folder / f"site_{p}.npz"
        np.savez(path, X=np.asarray(X)[rows], y=np.asarray(y)[rows])
        paths.append(path)
    return paths


class FlowerRun:
    """What a Flower run returns: the result, the final global parameters, payload bytes per site."""

    def __init__(self, result: FederatedResult, final_params: torch.Tensor, sites: FlowerSites,
                 wall_s: float) -> None:
        self.result, self.final_params, self.wall_s = result, final_params, wall_s
        self.sent_bytes, self.received_bytes = sites.sent_bytes.copy(), sites.received_bytes.copy()
        self.update_bytes = sites.update_bytes.copy()
        self.bytes_by_step = {k: list(v) for k, v in sites.bytes_by_step.items()}


#: Ray on a small machine: two CPUs, one per ClientApp, no dashboard, quiet workers
RAY_BACKEND = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
               "init_args": {"num_cpus": 2, "num_gpus": 0, "include_dashboard": False,
                             "log_to_driver": False}}


def _start_ray(init_args: dict, attempts: int = 3) -> None:
    """Start Ray here before Flower does (Flower then uses it and shuts it down at the end), retrying:
    on a loaded machine Ray 2.55's raylet can die waiting 15 s for its dashboard agent
    (ray-project/ray#65983), which fails the whole simulation."""
    import ray

    pythonpath = os.pathsep.join(sys.path)  # as Flower's backend does: actors see this interpreter's path
    for attempt in range(attempts):
        try:
            ray.init(runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
                     **{"include_dashboard": False, **init_args})
            return
        except Exception:
            ray.shutdown()
            if attempt == attempts - 1:
                raise


def run_flower_simulation(X: Any, y: Any, X_test: Any, y_test: Any, partition: Sequence[Any],
                          label_budget: int, batch_size: int, strategy: str, epsilon: float | None = None,
                          *, backend_config: dict | None = None, verbose: bool = False,
                          **settings: Any) -> FlowerRun:
    """:func:`~ppal_lab.federated.run_federated_al` on Flower's simulation engine (Ray): one virtual
    SuperNode per site holding ``site_<p>.npz``, the orchestrator as the ServerApp. Same arguments
    (checked the same way), same result for the same seed; item identities are not in the result."""
    from flwr.simulation import run_simulation

    scaling = settings.pop("scaling", None)
    v = _validate(X, y, X_test, y_test, partition, label_budget, batch_size, strategy, epsilon,
                  **{**{k: val for k, val in _DEFAULTS.items() if k != "epsilon"}, **settings},
                  progress=False, scaling=scaling)
    run_settings = {k: v[k] for k in SETTINGS}
    run_settings.update(n_classes=v["n_classes"], scaling=(v["center"], v["scale"]))
    box: list = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ppal-flower-") as tmp:
        write_site_files(v["X"], v["y"], v["parts"], tmp)
        server = orchestrator_app(run_settings, v["X_test"], v["y_test"], len(v["parts"]),
                                  sink=lambda *out: box.append(out))
        backend_config = backend_config or RAY_BACKEND
        _start_ray(backend_config.get("init_args", {}))
        run_simulation(server, site_app(tmp), num_supernodes=len(v["parts"]),
                       backend_config=backend_config, verbose_logging=verbose)
    if not box:
        raise RuntimeError("the Flower simulation ended without a result (see its log)")
    return FlowerRun(*box[0], wall_s=time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------
# the deployment engine
# ----------------------------------------------------------------------------------------------
_APP_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "ppal-consortium"
version = "1.0.0"
description = "Federated DP active learning of the PPAL compendium (orchestrator + sites)"
license = "MIT"
dependencies = ["flwr[simulation]==1.42.0"]

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "ppal"

[tool.flwr.app.components]
serverapp = "consortium_app:server_app"
clientapp = "consortium_app:client_app"

[tool.flwr.app.config]
{config}
"""


def write_app_dir(folder: str | Path, run_config: dict) -> Path:
    """A Flower app folder for ``flwr run``: ``pyproject.toml`` (components and the run config) and
    ``consortium_app.py``, which loads this module's ``server_app``/``client_app`` (``ppal_lab`` must be
    installed on the orchestrator's and every site's host)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{k} = {json.dumps(v)}" for k, v in run_config.items()]
    (folder / "pyproject.toml").write_text(_APP_PYPROJECT.format(config="\n".join(lines)))
    (folder / "consortium_app.py").write_text(
        '"""The PPAL consortium app: the orchestrator (ServerApp) and a site (ClientApp)."""\n'
        "from ppal_lab.federated import flower_app\n\n"
        "server_app = flower_app.server_app\nclient_app = flower_app.client_app\n")
    return folder

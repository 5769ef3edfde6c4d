"""The one place that imports CrypTen: a small shim that makes CrypTen 0.4.1 importable on torch 2.13.

Everything in ``ppal_lab`` (and every notebook) gets CrypTen with ``from ppal_lab.secure import crypten``.

Why a shim is needed
--------------------
CrypTen 0.4.1 (the last release) was written for torch 1.x/2.0. Its ``crypten/nn/onnx_converter.py``
probes torch's ONNX internals at import time::

    try:
        import torch.onnx.symbolic_registry as sym_registry      # torch < 1.13
        SYM_REGISTRY = True
    except ImportError:
        from torch.onnx._internal.registration import registry    # torch 1.13 .. 2.8
        SYM_REGISTRY = False

Modern torch has neither module, so ``import crypten`` dies with ``ModuleNotFoundError``. The name
``registry`` is *only* imported; CrypTen never uses it (with ``SYM_REGISTRY = False`` it registers its
ONNX symbolics through the public ``torch.onnx.register_custom_op_symbolic``, which still exists). So the
smallest correct fix is: while ``import crypten`` runs, put a placeholder module under the removed name in
``sys.modules``; take it out again right after, so that no other code (nor a later ``import torch.onnx``)
sees a fake torch module. The placeholder's ``registry`` raises a ``RuntimeError`` on any use, so if a
future code path did touch it, it fails loudly instead of silently doing the wrong thing. Nothing in
``site-packages`` is edited; importing this module twice is harmless (it returns the cached ``crypten``);
on a torch that still has the real module the shim does nothing.

Two more torch-2.x incompatibilities, handled by the small helpers below rather than by patching CrypTen:

* ``crypten.load`` calls ``torch.load(f)``, whose default became ``weights_only=True`` in torch 2.6, which
  refuses CrypTen's pickled objects. :func:`load_trusted` passes ``weights_only=False`` -- which runs
  arbitrary pickle code, so only load files you wrote yourself.
* ``crypten.nn.from_pytorch`` exports the model with ``torch.onnx.export``, whose default is now the dynamo
  exporter (needs ``onnxscript`` and ignores CrypTen's custom symbolics). :func:`from_pytorch` forces the
  TorchScript exporter (``dynamo=False``) for the duration of the call.

Two speed helpers. :func:`without_debug_hook`: CrypTen wraps every attribute access of a CrypTensor in a
debug-validation hook that reads ``cfg.debug.validation_mode`` through omegaconf -- about 30 us each, a
fifth of the time of a secure MADDPG update. With validation off (the default) the hook returns what
the undecorated function returns, so skipping it changes nothing but the time. :func:`cached_config`:
CrypTen reads its config (``cfg.mpc.provider``, ``cfg.encoder.precision_bits``, ...) through omegaconf
some 1,600 times per secure MADDPG iteration; inside the block each section is read once per config
object and kept as plain attributes (``temp_override`` makes a new object, so it is read again).

Other CrypTen facts worth knowing: the wheel also installs a top-level package called ``configs`` (it
holds CrypTen's ``default.yaml``; never name a project package ``configs``); ``crypten.cfg`` is per
process, so settings made in a notebook are not seen by parties started with
:func:`ppal_lab.secure.twoparty.run_parties` (set them inside the party function); ``from_pytorch``
replaces torch's ONNX symbolics for softmax/log_softmax/dropout for the rest of the process.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import sys
import threading
import types
import warnings

import torch

__all__ = ["crypten", "SHIM_USED", "cached_config", "load_trusted", "from_pytorch", "without_debug_hook"]

_REMOVED_MODULE = "torch.onnx._internal.registration"
_lock = threading.RLock()


class _RemovedTorchRegistry:
    """Stands in for ``torch.onnx._internal.registration.registry``; any use raises."""

    def _fail(self, what: str = "it"):
        raise RuntimeError(
            f"CrypTen tried to use {_REMOVED_MODULE}.registry ({what}), which torch {torch.__version__} "
            "no longer has. ppal_lab.secure.crypten_compat only provides a placeholder so that "
            "`import crypten` works; this CrypTen code path is not supported on this torch version."
        )

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):  # let copy/pickle/inspect probes behave normally
            raise AttributeError(name)
        self._fail(f"attribute {name!r}")

    def __call__(self, *args, **kwargs):
        self._fail("call")

    def __getitem__(self, key):
        self._fail("item access")

    def __iter__(self):
        self._fail("iteration")

    def __len__(self):
        self._fail("len()")

    def __contains__(self, item):
        self._fail("membership test")

    def __bool__(self):
        self._fail("truth test")

    def __repr__(self):
        return f"<placeholder for the removed {_REMOVED_MODULE}.registry>"


def _import_crypten() -> tuple[types.ModuleType, bool]:
    """Import CrypTen, with the placeholder module in place only while the import runs."""
    with _lock:
        if "crypten" in sys.modules:  # already imported (by us or anyone): nothing to do
            return sys.modules["crypten"], False
        try:
            needs_stub = importlib.util.find_spec(_REMOVED_MODULE) is None
        except ModuleNotFoundError:  # a parent package is missing too: same situation
            needs_stub = True
        if not needs_stub:  # an older torch that still has the module: import CrypTen untouched
            return importlib.import_module("crypten"), False
        stub = types.ModuleType(_REMOVED_MODULE, "ppal_lab placeholder for a module torch removed")
        stub.registry = _RemovedTorchRegistry()
        sys.modules[_REMOVED_MODULE] = stub
        try:
            module = importlib.import_module("crypten")
        finally:
            # CrypTen keeps its own reference to `registry`; nobody else should find the fake module.
            if sys.modules.get(_REMOVED_MODULE) is stub:
                del sys.modules[_REMOVED_MODULE]
        return module, True


crypten, SHIM_USED = _import_crypten()
"""The CrypTen module. ``SHIM_USED`` says whether the placeholder was needed for this import."""


def load_trusted(f, **kwargs):
    """``crypten.load(f)`` that works on torch >= 2.6 (``torch.load(..., weights_only=False)``).

    ``weights_only=False`` unpickles arbitrary objects and can run code: only load files that you (or
    your own parties) wrote with ``crypten.save``. Extra ``kwargs`` go to ``torch.load``.
    """
    closure = functools.partial(torch.load, weights_only=False)
    return crypten.load(f, load_closure=closure, **kwargs)


def from_pytorch(pytorch_model: torch.nn.Module, dummy_input):
    """``crypten.nn.from_pytorch`` with torch's TorchScript ONNX exporter (``dynamo=False``).

    CrypTen looks up ``torch.onnx.export`` at call time, so the default is switched only for the
    duration of this call (under a lock). Side effect of CrypTen itself: its ONNX symbolics for
    softmax, log_softmax and dropout stay registered with torch for the rest of the process.
    """
    with _lock:
        original = torch.onnx.export

        @functools.wraps(original)
        def export_torchscript(*args, **kwargs):
            kwargs.setdefault("dynamo", False)
            return original(*args, **kwargs)

        torch.onnx.export = export_torchscript
        try:
            with warnings.catch_warnings():  # the legacy exporter is chosen on purpose: say so once here
                warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export",
                                        DeprecationWarning)
                warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
                return crypten.nn.from_pytorch(pytorch_model, dummy_input)
        finally:
            torch.onnx.export = original


@contextlib.contextmanager
def without_debug_hook():
    """Within this block, CrypTensor attribute access skips CrypTen's debug-validation hook.

    Only when ``crypten.cfg.debug.validation_mode`` is off (the default), where the hook is a no-op that
    costs an omegaconf lookup per access; with validation on, nothing is changed. Restores the hook on
    exit. The hook is ``functools.wraps``-decorated, so the undecorated function is its ``__wrapped__``.
    """
    cls = crypten.CrypTensor
    hooked = cls.__dict__["__getattribute__"]
    plain = getattr(hooked, "__wrapped__", None)
    if plain is None or crypten.cfg.debug.validation_mode:
        yield
        return
    with _lock:
        cls.__getattribute__ = plain
    try:
        yield
    finally:
        with _lock:
            cls.__getattribute__ = hooked


class _Section:
    """A read-only section of CrypTen's config as plain attributes."""

    __slots__ = ("_items",)

    def __init__(self, items: dict):
        object.__setattr__(self, "_items", {k: _Section(v) if isinstance(v, dict) else v for k, v in items.items()})

    def __getattr__(self, name):
        try:
            return object.__getattribute__(self, "_items")[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError(f"crypten.cfg is read-only inside cached_config(): set {name} before the block")


@contextlib.contextmanager
def cached_config():
    """Within this block, ``crypten.cfg.<section>`` is read from omegaconf once per config object and then
    served as plain read-only attributes; settings are made before the block (a write inside raises)."""
    from omegaconf import DictConfig, OmegaConf

    cls = type(crypten.cfg)
    original = cls.__dict__["__getattribute__"]
    cache: dict = {}

    def __getattribute__(self, name):
        try:
            return object.__getattribute__(self, name)
        except AttributeError:
            pass
        config = object.__getattribute__(self, "config")
        hit = cache.get(name)
        if hit is not None and hit[0] is config:      # the same object: never a recycled id
            return hit[1]
        value = original(self, name)
        if isinstance(value, DictConfig):
            value = _Section(OmegaConf.to_container(value, resolve=True))
        cache[name] = (config, value)
        return value

    with _lock:
        cls.__getattribute__ = __getattribute__
    try:
        yield
    finally:
        with _lock:
            cls.__getattribute__ = original

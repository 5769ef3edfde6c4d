"""Tests of ppal_lab.secure's CrypTen import shim (``crypten_compat``). The party launcher
(``twoparty``) is tested in test_twoparty.py, what parties receive in test_transcript.py."""
from __future__ import annotations

import importlib
import sys

import pytest
import torch


# ------------------------------------------------------------------------------------------------ shim

@pytest.mark.timeout(60)
def test_shim_imports_crypten_and_leaves_torch_onnx_alone():
    from ppal_lab.secure import crypten
    from ppal_lab.secure import crypten_compat

    assert crypten.__version__ == "0.4.1"
    assert hasattr(crypten, "cryptensor") and hasattr(crypten.nn, "from_onnx")
    # Idempotent: importing again yields the same module and installs nothing new.
    assert crypten_compat.SHIM_USED  # torch 2.13 lacks the module, so the placeholder was needed
    again, used = crypten_compat._import_crypten()
    assert again is crypten and used is False
    # The placeholder is gone from sys.modules; torch.onnx is untouched and importable.
    assert "torch.onnx._internal.registration" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("torch.onnx._internal.registration")
    import torch.onnx
    assert callable(torch.onnx.export) and callable(torch.onnx.register_custom_op_symbolic)
    # CrypTen's only reference to the removed registry fails loudly if anything ever uses it.
    placeholder = crypten.nn.onnx_converter.registry
    with pytest.raises(RuntimeError, match="no longer has"):
        placeholder.register  # noqa: B018
    with pytest.raises(RuntimeError):
        bool(placeholder)


@pytest.mark.timeout(60)
def test_without_debug_hook_skips_only_the_no_op_hook_and_restores_it():
    from ppal_lab.secure import crypten
    from ppal_lab.secure.crypten_compat import without_debug_hook

    cls = crypten.CrypTensor
    hooked = cls.__dict__["__getattribute__"]
    assert hooked.__wrapped__ is not hooked
    with without_debug_hook():
        assert cls.__dict__["__getattribute__"] is hooked.__wrapped__
    assert cls.__dict__["__getattribute__"] is hooked
    crypten.cfg.debug.validation_mode = True      # validation on: the hook does real work, keep it
    try:
        with without_debug_hook():
            assert cls.__dict__["__getattribute__"] is hooked
    finally:
        crypten.cfg.debug.validation_mode = False
    with pytest.raises(KeyError):                  # restored even when the block raises
        with without_debug_hook():
            raise KeyError("x")
    assert cls.__dict__["__getattribute__"] is hooked


@pytest.mark.timeout(60)
def test_cached_config_reads_each_section_once_follows_temp_override_and_refuses_writes():
    from omegaconf import DictConfig

    from ppal_lab.secure import crypten
    from ppal_lab.secure.crypten_compat import cached_config

    cfg = crypten.cfg
    reads = []
    original = DictConfig.__getattr__

    def counting(self, key):
        reads.append(key)
        return original(self, key)

    provider, bits = cfg.mpc.provider, cfg.encoder.precision_bits
    DictConfig.__getattr__ = counting
    try:
        with cached_config():
            for _ in range(50):
                assert cfg.mpc.provider == provider and cfg.encoder.precision_bits == bits
            assert reads.count("mpc") == 1          # one omegaconf read, then plain attributes
            with cfg.temp_override({"encoder.precision_bits": bits + 3}):
                assert cfg.encoder.precision_bits == bits + 3
            assert cfg.encoder.precision_bits == bits
            with pytest.raises(AttributeError, match="read-only"):
                cfg.encoder.precision_bits = 7
    finally:
        DictConfig.__getattr__ = original
    assert type(cfg.mpc) is DictConfig             # restored


@pytest.mark.timeout(60)
def test_from_pytorch_helper_uses_torchscript_exporter():
    from ppal_lab.secure import from_pytorch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    export_before = torch.onnx.export
    converted = from_pytorch(model, torch.randn(1, 3))
    assert torch.onnx.export is export_before  # the dynamo=False switch is undone
    x = torch.randn(4, 3)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x))  # unencrypted CrypTen model == torch model

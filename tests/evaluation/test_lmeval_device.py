"""The lm-eval bridge takes lingualift's placement defaults: no CUDA on a CPU-only machine."""

import pytest
import torch

pytest.importorskip("lm_eval")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_bridge_without_device_runs_on_the_cpu_in_float32(tiny_model_dir):
    from lingualift.evaluation.lmeval_bridge import LingualiftLM

    lm = LingualiftLM(pretrained=str(tiny_model_dir), batch_size=2)
    assert lm.device.type == "cpu"
    assert {p.device.type for p in lm.model.parameters()} == {"cpu"}
    assert {p.dtype for p in lm.model.parameters()} == {torch.float32}
    assert lm.model.lingualift_placement.device == "cpu"
    # lm-eval's own model arguments work: a dtype, and the placement settings.
    lm = LingualiftLM(pretrained=str(tiny_model_dir), dtype="bfloat16", trust_remote_code="False")
    assert {p.dtype for p in lm.model.parameters()} == {torch.bfloat16}


def test_bridge_refuses_cuda_on_a_cpu_only_machine(tiny_model_dir, monkeypatch):
    from lingualift.errors import LingualiftError
    from lingualift.evaluation.lmeval_bridge import LingualiftLM
    from lingualift.placement import DeviceCapabilities

    monkeypatch.setattr(DeviceCapabilities, "detect", classmethod(lambda cls: DeviceCapabilities()))
    with pytest.raises(LingualiftError, match="no CUDA GPU; use device=auto or device=cpu"):
        LingualiftLM(pretrained=str(tiny_model_dir), device="cuda")

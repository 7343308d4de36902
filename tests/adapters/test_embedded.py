"""The whole loop on the embedded Gemma 3 270M: train, store, route (a few minutes on 2 cores)."""

import pytest

from lingualift.adapters import Router
from lingualift.jobs.train import TrainConfig, run_train
from lingualift.training import LoraSettings, TrainingArgs

pytestmark = pytest.mark.integration


def test_embedded_gemma_trains_a_swahili_adapter_and_routes_to_it(tmp_path):
    config = TrainConfig(
        lang="sw",
        data="corpus:sw:43:64",
        lora=LoraSettings(r=4, alpha=8),
        train=TrainingArgs(max_steps=3, batch_size=2, max_length=64, lr=1e-3),
        packing=True,
        eval_fraction=0.1,
        out_dir=str(tmp_path / "run"),
        store=str(tmp_path / "store"),
    )
    result = run_train(config)
    card = result.adapter.card
    assert card["base_model"]["hidden_size"] == 640 and card["base_model"]["num_layers"] == 18
    assert card["metrics"]["eval_loss"] < card["metrics"]["eval_loss_before"]
    router = Router(store=tmp_path / "store")
    out = router.generate(
        ["Habari ya asubuhi, rafiki yangu. Leo tunakwenda", "Good morning, my friend. Today we"],
        max_new_tokens=4,
    )
    assert out[0].route.adapter == "sw/v1" and out[1].route.adapter is None
    assert all(g.new_tokens > 0 for g in out)

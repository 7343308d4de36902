import json

import pytest
import torch

from lingualift.adapters import Router
from lingualift.errors import LingualiftError
from lingualift.testing import tiny_causal_lm

from .conftest import TINY, make_store

SWAHILI = "Habari ya asubuhi rafiki yangu, ninakwenda sokoni leo kununua matunda."
FRENCH = "Bonjour mon ami, je vais au marché aujourd'hui pour acheter des fruits."
ENGLISH = "Good morning my friend, I am going to the market today to buy some fruit."


@pytest.fixture
def store(tmp_path):
    """A store with random (non-zero) sw and fr adapters on the tiny model."""
    return make_store(tmp_path / "store")


def alone(store, lang, texts):
    """Logits of ``texts`` with one adapter applied the plain PEFT way (or none)."""
    from peft import PeftModel

    model, tok = tiny_causal_lm("llama", **TINY)
    if lang is not None:
        model = PeftModel.from_pretrained(model, str(store.path(lang)))
    model.eval()
    batch = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits, batch["attention_mask"].bool()


def test_mixed_batch_routes_each_row_to_its_adapter(store):
    router = Router(*tiny_causal_lm("llama", **TINY), store=store)
    assert router.languages == ["fr", "sw"]
    texts = [SWAHILI, FRENCH, ENGLISH, FRENCH]
    routes = router.route(texts)  # detected by py3langid
    assert [r.lang for r in routes] == ["sw", "fr", "en", "fr"]
    assert [r.adapter for r in routes] == ["sw/v1", "fr/v1", None, "fr/v1"]
    assert routes[2].note and "no adapter for 'en'" in routes[2].note
    # The rows mix two adapters and the base model: the registry runs them as stacked LoRA.
    with router.registry.batch([router.registry.current(r.lang) for r in routes]) as extra:
        assert extra == {}
    mixed = router.logits(texts)
    for row, lang in enumerate(["sw", "fr", None, "fr"]):
        expected, mask = alone(store, lang, texts)
        torch.testing.assert_close(
            mixed[row][mask[row]], expected[row][mask[row]], rtol=1e-5, atol=1e-5
        )
    # The adapters really differ, so the comparison above can fail.
    sw_logits, mask = alone(store, "sw", texts)
    assert not torch.allclose(mixed[1][mask[1]], sw_logits[1][mask[1]])


def test_generation_matches_each_adapter_alone(store):
    router = Router(*tiny_causal_lm("llama", **TINY), store=store)
    prompts = ["jambo", "salut", "hello"]
    mixed = router.generate(prompts, ["sw", "fr", "yo"], max_new_tokens=6)
    assert [g.route.adapter for g in mixed] == ["sw/v1", "fr/v1", None]
    assert "no adapter for 'yo'" in mixed[2].route.note
    for i, lang in enumerate(["sw", "fr", "yo"]):
        single = router.generate([prompts[i]], [lang], max_new_tokens=6)[0]
        assert single.text == mixed[i].text
    with pytest.raises(LingualiftError, match=r"no adapter for 'yo' .*drop --strict"):
        Router(*tiny_causal_lm("llama", **TINY), store=store, strict=True).route(["x"], ["yo"])


def test_bad_adapters_are_one_clear_sentence(store, tmp_path):
    other_base = tiny_causal_lm("qwen2", hidden_size=64, num_layers=2)
    with pytest.raises(LingualiftError, match="trained on a different base model"):
        Router(*other_base, store=store, langs=["sw"])
    with pytest.raises(LingualiftError, match="No adapter for language 'yo'"):
        Router(*tiny_causal_lm("llama", **TINY), store=store, langs=["yo"])
    # A PEFT folder without a card, for another model: refused from its weights' shapes.
    card_less = tmp_path / "copied"
    card_less.mkdir()
    for f in store.path("sw").iterdir():
        if f.name != "card.json":
            (card_less / f.name).write_bytes(f.read_bytes())
    with pytest.raises(LingualiftError, match="does not fit this base model"):
        Router(*tiny_causal_lm("llama", hidden_size=48, num_layers=2), adapters={"sw": card_less})
    (store.path("fr") / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(LingualiftError, match=r"fr/v1/adapter_model.safetensors is damaged"):
        Router(*tiny_causal_lm("llama", **TINY), store=store, langs=["fr"])
    cfg = json.loads((store.path("sw") / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA"  # a plain PEFT folder

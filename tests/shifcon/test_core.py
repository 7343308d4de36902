"""ShifCon.build: vectors, the layer area and the curve in one call; the corpus inputs."""

from lingualift.languages import DOMINANT_LANGUAGE
from lingualift.shifcon import ShifCon
from lingualift.shifcon.area import choose_area
from lingualift.shifcon.corpus import corpus_pairs, corpus_texts
from lingualift.testing import tiny_causal_lm


def test_build_computes_chooses_saves_and_plots(tmp_path):
    model, tokenizer = tiny_causal_lm("llama", hidden_size=32, num_layers=6)
    texts = {
        "en": [f"good morning my friend number {i}" for i in range(8)],
        "sw": [f"habari ya asubuhi rafiki yangu {i}" for i in range(8)],
        "fr": [f"bonjour mon ami numero {i}" for i in range(8)],
    }
    folder = tmp_path / "shifcon"
    built = ShifCon.build(
        model, tokenizer, texts, folder, base_spec="tiny", batch_size=4, max_length=16,
        subspace_rank=2, progress=False,
    )  # fmt: skip
    a, b, record = choose_area(built.vectors)  # the documented rule, on the same vectors
    assert (built.a, built.b) == (a, b) and built.curve == record
    assert built.languages == ["en", "fr", "sw"] and built.base_model == "tiny"
    loaded = ShifCon.load(folder)
    assert (loaded.a, loaded.b, loaded.curve) == (a, b, record)
    assert (folder / "layers.png").stat().st_size > 0


def test_corpus_inputs_keep_the_dominant_language_and_pair_verses():
    texts = corpus_texts(["sw"], books="1", per_language=5)
    assert list(texts) == [DOMINANT_LANGUAGE, "sw"] and all(len(v) == 5 for v in texts.values())
    pairs = corpus_pairs(["sw"], "1", 3)
    assert [p.lang for p in pairs] == ["sw"] * 3
    assert pairs[0].text == texts["sw"][0] and pairs[0].parallel == texts["en"][0]

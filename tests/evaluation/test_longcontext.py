import pytest

from lingualift.errors import LingualiftError
from lingualift.evaluation.longcontext import (
    TEMPLATES,
    evaluate_longcontext,
    longcontext_results,
    make_cwe,
    make_niah,
    score,
)
from lingualift.testing import byte_tokenizer, tiny_causal_lm

WORDS = [
    "mji",
    "pwani",
    "bahari",
    "kubwa",
    "mto",
    "mlima",
    "jua",
    "mvua",
    "nyumba",
    "shamba",
    "mti",
    "ndege",
    "samaki",
    "watu",
    "kazi",
    "chakula",
    "maji",
    "moto",
    "upepo",
    "giza",
    "nuru",
    "njia",
    "soko",
    "mwezi",
    "nyota",
    "wingu",
    "jiwe",
    "mchanga",
    "kisiwa",
    "bandari",
    "mashua",
]
TEXTS = [
    f"Hii ni sentensi {WORDS[i % 30]} na {WORDS[(7 * i) % 30]} {WORDS[(3 * i) % 30]}."
    for i in range(200)
]


def test_at_least_ten_languages():
    assert len(TEMPLATES) >= 10
    assert all("{key}" in t.question and "{value}" in t.needle for t in TEMPLATES.values())


@pytest.mark.parametrize("task", ["niah_single", "niah_multi", "niah_none"])
def test_niah_lengths_needles_and_scoring(task):
    tok = byte_tokenizer()
    items = make_niah(tok, "sw", 1024, n=4, task=task, texts=TEXTS, n_values=3)
    for it in items:
        n_tokens = len(tok.encode(it.prompt))
        assert 0.9 * 1024 <= n_tokens <= 1.1 * 1024
        assert "Nambari maalum za kichawi" in it.prompt and it.none_word == "hakuna"
        for value in it.answers:
            assert f"ni: {value}." in it.prompt
        want = " ".join(it.answers) if it.answers else "hakuna"
        assert score(it, want) == 1.0
        assert score(it, "1234567") == 0.0
    if task == "niah_multi":
        assert all(len(it.answers) == 3 for it in items)
    if task == "niah_none":
        assert [bool(it.answers) for it in items] == [False, True, False, True]


def test_cwe_and_results():
    tok = byte_tokenizer()
    items = make_cwe(tok, "sw", 2048, n=2, texts=TEXTS)
    it = items[0]
    body_words = [line.split(". ", 1)[1] for line in it.prompt.splitlines() if ". " in line[:6]]
    counts = {w: body_words.count(w) for w in it.answers}
    assert all(c == 30 for c in counts.values())
    assert score(it, ", ".join(it.answers[:5])) == 0.5
    model, _ = tiny_causal_lm("llama", hidden_size=32, num_layers=2, max_positions=4096)
    samples = evaluate_longcontext(model, tok, items[:1], max_new_tokens=3, progress=False)
    res = longcontext_results(samples, {"model": "tiny"})
    assert res["results"]["cwe_sw_2048"]["sample_len"] == 1 and "cwe" in res["results"]
    assert res["n-samples"]["cwe_sw_2048"]["effective"] == 1


def test_length_above_model_limit():
    model, tok = tiny_causal_lm("llama", hidden_size=32, num_layers=2, max_positions=512)
    with pytest.raises(LingualiftError, match="above the model's limit of 512 tokens"):
        make_niah(tok, "sw", 1024, n=1, texts=TEXTS, model=model)
    with pytest.raises(LingualiftError, match="No long-context instructions for 'yo'"):
        make_niah(tok, "yo", 1024, n=1, texts=TEXTS)

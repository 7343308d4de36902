"""``batch_size=auto`` in the lm-eval bridge: lm-eval's own search on a GPU, refused on CPU."""

import pytest

from lingualift.errors import LingualiftError

pytest.importorskip("lm_eval")


def _model(tiny_model_dir, batch_size, **kw):
    from lingualift.evaluation.lmeval_bridge import LingualiftLM

    return LingualiftLM(pretrained=str(tiny_model_dir), batch_size=batch_size, device="cpu", **kw)


def test_auto_is_refused_on_cpu_and_nonsense_in_one_sentence(tiny_model_dir):
    with pytest.raises(LingualiftError, match=r"batch_size=auto .* only a GPU reports .* e\.g\."):
        _model(tiny_model_dir, "auto")
    with pytest.raises(LingualiftError, match=r"batch_size=auto"):
        _model(tiny_model_dir, "auto:4")
    with pytest.raises(LingualiftError, match=r"batch_size='eight' is neither a positive number"):
        _model(tiny_model_dir, "eight")
    with pytest.raises(LingualiftError, match=r"batch_size='0' is neither"):
        _model(tiny_model_dir, "0")
    assert _model(tiny_model_dir, "3").batch_size == 3  # lm-eval's CLI passes text


def test_auto_scores_in_the_batch_lm_evals_search_finds(tiny_model_dir):
    """What a GPU run does after construction, on CPU: lm-eval's ``_detect_batch_size`` (really
    run, on the tiny model) picks the batch, and the scores do not depend on it."""
    lm = _model(tiny_model_dir, 2, max_batch_size=4)
    tok = lm.tokenizer
    requests = [
        (("ctx", c), tok.encode(f"Swali {i}: jibu ni", add_special_tokens=True), tok.encode(c))
        for i in range(5)
        for c in (" A", " B")
    ]
    fixed = lm._loglikelihood_tokens(requests, disable_tqdm=True)
    lm.batch_size_per_gpu = "auto"  # as HFLM stores batch_size='auto' (allowed on a GPU)
    auto = lm._loglikelihood_tokens(requests, disable_tqdm=True)
    assert lm._scorer.batch_size == 4  # the largest batch lm-eval tried, from max_batch_size
    assert [a for a, _ in auto] == pytest.approx([f for f, _ in fixed], abs=1e-5)

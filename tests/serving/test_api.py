"""The HTTP API through the official openai client and raw HTTP against a live server."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lingualift.testing import save_tiny_causal_lm

from ..adapters.conftest import TINY
from .conftest import (
    ENGLISH,
    FRENCH,
    SWAHILI,
    live_server,
    make_store,
    openai_client,
    serve_config,
    wait_for,
)

MAX_POSITIONS = 256


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One live server for the module: sw/v1 and fr/v1, a context of 256 tokens."""
    root = tmp_path_factory.mktemp("api")
    model_dir = save_tiny_causal_lm(root / "model", "llama", **TINY, max_positions=MAX_POSITIONS)
    store = make_store(root / "store")
    limits = dict(max_tokens_limit=64, default_max_tokens=16, max_body_bytes=4096)
    config = serve_config(model_dir, store, root, **limits)
    with live_server(config) as (parts, url):
        yield parts, url


@pytest.fixture
def client(server):
    return openai_client(server[1])


def test_models_list_the_base_model_each_language_and_auto(client):
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny", "fr", "sw", "auto"]
    assert models[2].lingualift == {"adapter": "sw/v1", "lang": "sw", "parent": "tiny"}


def test_one_model_can_be_retrieved_by_id(client):
    assert client.models.retrieve("fr").lingualift["adapter"] == "fr/v1"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("../secrets")


def test_without_max_tokens_the_default_is_cut_to_the_context_left(client):
    answer = client.completions.create(
        model="sw", prompt="x" * 250, temperature=0, extra_body={"ignore_eos": True}
    )
    assert answer.usage.prompt_tokens + answer.usage.completion_tokens == MAX_POSITIONS
    assert answer.choices[0].finish_reason == "length"


def test_a_named_language_uses_its_adapter_and_says_so(server, client):
    raw = client.completions.with_raw_response.create(
        model="sw", prompt="jambo", max_tokens=5, temperature=0
    )
    answer = raw.parse()
    assert raw.headers["x-lingualift-adapter"] == "sw/v1"
    assert answer.lingualift == {
        "adapter": "sw/v1",
        "lang": "sw",
        "lang_detected": False,
        "lang_confidence": None,
        "fallback": None,
    }
    assert answer.object == "text_completion" and answer.model == "sw"
    prompt_tokens = len(server[0].engine.encode("jambo"))
    assert answer.usage.prompt_tokens == prompt_tokens
    assert 1 <= answer.usage.completion_tokens <= 5
    assert answer.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize(
    ("model", "text", "adapter", "lang", "fallback"),
    [
        ("auto", FRENCH, "fr/v1", "fr", None),
        ("tiny", SWAHILI, "sw/v1", "sw", None),  # the base model's id routes like auto
        ("auto", ENGLISH, None, "en", "no_adapter"),
        ("auto", "12 34 56 ??", None, None, "lang_unsure"),
    ],
)
def test_auto_routes_chat_by_the_last_user_message(client, model, text, adapter, lang, fallback):
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": text},
        ],
        max_tokens=4,
        temperature=0,
    )
    info = raw.parse().lingualift
    assert raw.headers["x-lingualift-adapter"] == (adapter or "base")
    assert (info["adapter"], info["lang"], info["fallback"]) == (adapter, lang, fallback)
    assert info["lang_detected"] is True and 0 <= info["lang_confidence"] <= 1


def test_streams_carry_the_same_text_and_end_with_done(server, client):
    kwargs = dict(model="fr", max_tokens=12, temperature=0, extra_body={"ignore_eos": True})
    whole = client.completions.create(prompt="salut", **kwargs).choices[0].text
    chunks = list(client.completions.create(prompt="salut", stream=True, **kwargs))
    assert "".join(c.choices[0].text for c in chunks) == whole
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.lingualift["adapter"] == "fr/v1" for c in chunks)

    messages = [{"role": "user", "content": "salut"}]
    whole = client.chat.completions.create(messages=messages, **kwargs).choices[0].message.content
    stream = client.chat.completions.create(
        messages=messages, stream=True, stream_options={"include_usage": True}, **kwargs
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12

    body = {"model": "fr", "prompt": "salut", "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{server[1]}/v1/completions", json=body, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "text_completion"


def post(server, path, body=None, content=None):
    url = f"{server[1]}{path}"
    return httpx.post(url, json=body, content=content, timeout=30)


def assert_error(response, status, param=None, code=None, says=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    if says is not None:
        assert says in error["message"]


def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(server, client):
    completions = "/v1/completions"
    assert_error(post(server, completions, content=b"{not json"), 400, code="invalid_json")
    assert_error(post(server, completions, content=b"[1, 2]"), 400, code="invalid_json")
    for model in ("xx-unknown", "../../etc/passwd", "sw/v1"):
        response = post(server, completions, {"model": model, "prompt": "hi"})
        assert_error(response, 404, param="model", code="model_not_found")
    too_many = {"model": "sw", "prompt": "hi", "max_tokens": 65}
    assert_error(post(server, completions, too_many), 400, "max_tokens", says="at most 64")
    long_prompt = {"model": "sw", "prompt": "x" * 250, "max_tokens": 20}
    assert_error(
        post(server, completions, long_prompt), 400, code="context_length_exceeded", says="256"
    )
    assert_error(post(server, completions, content=b"x" * 5000), 413, code="request_too_large")
    assert_error(post(server, completions, {"model": "sw", "prompt": "hi", "n": 0}), 400, "n")
    assert_error(post(server, completions, {"model": "sw"}), 400, "prompt")
    assert_error(post(server, "/v1/chat/completions", {"model": "sw"}), 400, "messages")
    bad_temperature = {"model": "sw", "prompt": "hi", "temperature": 7}
    assert_error(post(server, completions, bad_temperature), 400, "temperature")
    assert_error(httpx.get(f"{server[1]}/v1/nothing-here"), 404)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="hi")
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="sw", prompt="hi", max_tokens=1000)
    assert client.completions.create(model="sw", prompt="still here", max_tokens=2).choices


def test_metrics_count_languages_adapters_fallbacks_and_queue(server, client):
    client.completions.create(model="auto", prompt=FRENCH, max_tokens=2)
    client.completions.create(model="auto", prompt=ENGLISH, max_tokens=2)
    text = httpx.get(f"{server[1]}/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))), 0)

    assert value("lingualift_requests_by_language_total", lang="fr") >= 1
    assert value("lingualift_requests_by_adapter_total", adapter="fr/v1") >= 1
    assert value("lingualift_requests_by_adapter_total", adapter="base") >= 1
    assert value("lingualift_base_fallbacks_total", reason="no_adapter") >= 1
    assert value("lingualift_requests_total", route="/v1/completions", status="200") >= 2
    assert value("lingualift_request_latency_seconds_count", route="/v1/completions") >= 2
    assert value("lingualift_completion_tokens_total") >= 2
    assert ("lingualift_queue_depth", ()) in samples
    assert value("lingualift_adapters_loaded") == 2
    assert value("lingualift_batch_size_count") >= 2


def test_an_api_key_guards_every_route_but_health(model_dir, store, tmp_path, monkeypatch):
    monkeypatch.setenv("LINGUALIFT_API_KEY", "from-env")
    config = serve_config(model_dir, store, tmp_path)
    assert config.resolved_api_key() == "from-env"
    config = serve_config(model_dir, store, tmp_path, api_key="s3cret")
    with live_server(config) as (_, url):
        with pytest.raises(openai.AuthenticationError) as caught:
            openai_client(url, api_key="wrong").completions.create(model="sw", prompt="hi")
        assert caught.value.status_code == 401
        assert caught.value.body["code"] == "invalid_api_key"
        assert openai_client(url, api_key="s3cret").models.list().data
        assert httpx.get(f"{url}/health").status_code == 200
        for path in ("/metrics", "/v1/models"):
            assert_error(httpx.get(f"{url}{path}"), 401, code="invalid_api_key")
        response = httpx.post(f"{url}/v1/completions", json={"model": "sw", "prompt": "hi"})
        assert_error(response, 401)


def test_a_full_queue_answers_429_and_queued_requests_are_served_later(model_dir, store, tmp_path):
    from lingualift.jobs.serve import build_server

    parts = build_server(serve_config(model_dir, store, tmp_path, max_queue=1))
    body = {"model": "sw", "prompt": "jambo", "max_tokens": 3}

    async def scenario():
        transport = httpx.ASGITransport(app=parts.app)  # no lifespan: the engine is not started
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            waiting = asyncio.create_task(http.post("/v1/completions", json=body))
            while parts.engine.queue_depth < 1:
                await asyncio.sleep(0.01)
            rejected = await http.post("/v1/completions", json=body)
            parts.engine.start()
            return rejected, await waiting

    try:
        rejected, served = asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        parts.engine.stop()
        parts.traffic.close()
    assert_error(rejected, 429, code="rate_limit_exceeded")
    assert rejected.headers["retry-after"] == "1"
    assert served.status_code == 200 and served.json()["lingualift"]["adapter"] == "sw/v1"
    assert parts.metrics.rejected._value.get() == 1


def test_a_seed_out_of_range_or_an_unrenderable_chat_is_a_400(server):
    big_seed = {"model": "sw", "prompt": "hi", "seed": 2**64, "temperature": 1}
    assert_error(post(server, "/v1/completions", big_seed), 400, "seed")
    # The tiny chat template renders any role; a template that raises is a 400, not a 500.
    from lingualift.chat import ChatTemplate

    service = server[0].app.state.service
    template = service.chat_template
    service.chat_template = ChatTemplate("{{ raise_exception('only user turns') }}", "inline")
    try:
        chat = {"model": "sw", "messages": [{"role": "tool", "content": "x"}]}
        assert_error(post(server, "/v1/chat/completions", chat), 400, "messages", says="only user")
    finally:
        service.chat_template = template


# -- every honoured parameter, through the official client -----------------------------------

GREEDY = dict(temperature=0, extra_body={"ignore_eos": True})


def token_id(server, char):
    (token,) = server[0].engine.encode(char, add_special_tokens=False)
    return token


def sw_model(server):
    """The served model with sw/v1 applied the plain PEFT way, for direct comparisons."""
    from peft import PeftModel

    from lingualift.models import load_causal_lm

    store = server[0].registry.store
    model, _ = load_causal_lm(str(server[0].engine.model.get_base_model().name_or_path))
    return PeftModel.from_pretrained(model, str(store.path("sw"))).eval()


def test_n_and_several_prompts_as_text_or_token_ids_number_choices_as_openai(server, client):
    def alone(prompt):
        answer = client.completions.create(model="sw", prompt=prompt, max_tokens=4, **GREEDY)
        return answer.choices[0].text

    answer = client.completions.create(
        model="sw", prompt=["jambo", "salut"], n=2, max_tokens=4, **GREEDY
    )
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert [c.text for c in answer.choices] == [alone("jambo")] * 2 + [alone("salut")] * 2
    encode = server[0].engine.encode
    assert answer.usage.prompt_tokens == len(encode("jambo")) + len(encode("salut"))
    assert answer.usage.completion_tokens == 16
    ids = encode("habari")
    by_ids = client.completions.create(model="sw", prompt=ids, max_tokens=4, **GREEDY)
    assert by_ids.choices[0].text == alone("habari")
    lists = client.completions.create(
        model="sw", prompt=[ids, encode("jambo")], max_tokens=4, **GREEDY
    )
    assert [c.text for c in lists.choices] == [alone("habari"), alone("jambo")]
    seeded = dict(
        model="fr",
        messages=[{"role": "user", "content": "salut"}],
        n=3,
        seed=5,
        temperature=1.0,
        max_tokens=12,
        extra_body={"ignore_eos": True},
    )
    chat = client.chat.completions.create(**seeded)
    assert len({c.message.content for c in chat.choices}) == 3  # seeded choices differ
    again = client.chat.completions.create(**seeded)
    assert [c.message.content for c in again.choices] == [c.message.content for c in chat.choices]


def test_echo_and_logprobs_score_the_prompt_as_lm_eval_asks(server, client):
    """lm-eval's local-completions loglikelihood request: token ids, echo, logprobs 1,
    max_tokens 1 (0 works too), temperature 0."""
    import torch

    ids = server[0].engine.encode("jambo rafiki yangu")
    body = dict(model="sw", prompt=ids, temperature=0, logprobs=1, echo=True, seed=1234)
    answer = client.completions.create(max_tokens=1, **body)
    choice = answer.choices[0]
    assert choice.text.startswith("jambo rafiki yangu") and len(choice.text) > len(
        "jambo rafiki yangu"
    )
    lp = choice.logprobs
    assert len(lp.tokens) == len(ids) + 1 and lp.token_logprobs[0] is None
    with torch.inference_mode():
        direct = torch.log_softmax(sw_model(server)(torch.tensor([ids])).logits[0], dim=-1)
    expected = [float(direct[i - 1, ids[i]]) for i in range(1, len(ids))]
    assert lp.token_logprobs[1 : len(ids)] == pytest.approx(expected, abs=1e-4)
    assert lp.token_logprobs[-1] == pytest.approx(float(direct[-1].max()), abs=1e-4)
    assert max(lp.top_logprobs[-1].values()) == lp.token_logprobs[-1]  # greedy: lm-eval's check
    assert lp.text_offset[0] == 0 and lp.text_offset[1] == len(lp.tokens[0])

    scored = client.completions.create(max_tokens=0, **body).choices[0]
    assert scored.text == "jambo rafiki yangu" and scored.finish_reason == "length"
    assert scored.logprobs.token_logprobs == lp.token_logprobs[:-1]

    chunks = list(client.completions.create(max_tokens=1, stream=True, **body))
    assert "".join(c.choices[0].text for c in chunks) == choice.text
    streamed = [
        v for c in chunks if c.choices[0].logprobs for v in c.choices[0].logprobs.token_logprobs
    ]
    assert streamed == lp.token_logprobs


def test_chat_logprobs_carry_top_alternatives_whole_and_streamed(client):
    kwargs = dict(
        model="sw", messages=[{"role": "user", "content": "jambo"}], max_tokens=6, **GREEDY
    )
    answer = client.chat.completions.create(logprobs=True, top_logprobs=3, **kwargs)
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens == 6
    for item in content:
        assert len(item.top_logprobs) == 3
        assert item.top_logprobs[0].logprob == pytest.approx(item.logprob)  # greedy: the best
        assert item.top_logprobs[0].logprob >= item.top_logprobs[1].logprob
    stream = client.chat.completions.create(logprobs=True, top_logprobs=3, stream=True, **kwargs)
    streamed = [
        i
        for c in stream
        if c.choices and c.choices[0].logprobs
        for i in c.choices[0].logprobs.content
    ]
    assert [(i.token, i.logprob) for i in streamed] == [(i.token, i.logprob) for i in content]
    plain = client.chat.completions.create(**kwargs)
    assert plain.choices[0].logprobs is None


def penalized_loop(
    server, prompt, steps, bias, frequency_penalty=0.0, presence_penalty=0.0, extra_body=None
):
    """Greedy tokens of the sw model with the bias and penalties applied by their definitions
    (OpenAI's over generated tokens, CTRL's over prompt and generated), without a cache."""
    import torch

    repetition = (extra_body or {}).get("repetition_penalty", 1.0)
    model = sw_model(server)
    ids = server[0].engine.encode(prompt)
    generated: list[int] = []
    with torch.inference_mode():
        for _ in range(steps):
            logits = model(torch.tensor([ids + generated])).logits[0, -1].clone()
            for token, value in bias.items():
                logits[token] += value
            for token in set(ids + generated):
                logits[token] = (
                    logits[token] / repetition if logits[token] > 0 else logits[token] * repetition
                )
            for token in set(generated):
                logits[token] -= frequency_penalty * generated.count(token) + presence_penalty
            generated.append(int(logits.argmax()))
    return server[0].engine.tokenizer.decode(generated, skip_special_tokens=True)


def test_penalties_bias_top_k_min_p_min_tokens_and_stop_tokens_act_as_defined(server, client):
    z, eos = token_id(server, "z"), server[0].engine.tokenizer.eos_token_id

    def text(**extra):
        body = {"ignore_eos": True, **extra.pop("extra_body", {})}
        answer = client.completions.create(
            model="sw", prompt="jambo", max_tokens=8, temperature=0, extra_body=body, **extra
        )
        return answer.choices[0]

    assert text(logit_bias={str(z): 100}).text == "z" * 8
    greedy = text().text
    assert text(logit_bias={str(server[0].engine.encode(greedy[0])[0]): -100}).text[0] != greedy[0]
    # The bias comes first, then the penalties, as the plain loop applying their definitions.
    for bias, penalties in [
        (10.0, {"frequency_penalty": 2.0}),
        (3.0, {"presence_penalty": 2.0}),
        (3.0, {"presence_penalty": -2.0, "frequency_penalty": 0.5}),
        (3.0, {"extra_body": {"repetition_penalty": 3.0}}),
    ]:
        served = text(logit_bias={str(z): bias}, **penalties).text
        assert served == penalized_loop(server, "jambo", 8, {z: bias}, **penalties)
        assert served != text(logit_bias={str(z): bias}).text  # "z" * 8: they did act
    # top_k 1 and min_p 1 keep only the most likely token: sampling becomes greedy.
    sampled = dict(temperature=1.5, seed=3)
    for kept in ({"top_k": 1}, {"min_p": 1.0}):
        answer = client.completions.create(
            model="sw",
            prompt="jambo",
            max_tokens=8,
            extra_body={"ignore_eos": True, **kept},
            **sampled,
        )
        assert answer.choices[0].text == greedy
    # End of sequence forced at once, held back by min_tokens; a stop token ends like it.
    forced = dict(
        model="sw", prompt="jambo", max_tokens=8, temperature=0, logit_bias={str(eos): 100}
    )
    first = client.completions.create(**forced).choices[0]
    assert (first.text, first.finish_reason) == ("", "stop")
    held = client.completions.create(**forced, extra_body={"min_tokens": 4})
    assert held.usage.completion_tokens == 5 and held.choices[0].finish_reason == "stop"
    stopped = client.completions.create(
        model="sw",
        prompt="jambo",
        max_tokens=8,
        temperature=0,
        logit_bias={str(z): 100},
        extra_body={"stop_token_ids": [z]},
    )
    assert (stopped.choices[0].text, stopped.usage.completion_tokens) == ("", 1)


def test_json_mode_answers_parse(server, client):
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    answer = client.chat.completions.create(
        model="sw",
        messages=[{"role": "user", "content": "Reply in JSON."}],
        max_tokens=32,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}},
    )
    assert isinstance(json.loads(answer.choices[0].message.content)["ok"], bool)
    assert answer.choices[0].finish_reason == "stop"
    # json_object on completions (vLLM's extension); the bias closes the object at once.
    close = token_id(server, "}")
    obj = client.completions.create(
        model="sw",
        prompt="jambo",
        max_tokens=32,
        temperature=0.7,
        seed=1,
        logit_bias={str(close): 50},
        extra_body={"response_format": {"type": "json_object"}},
    )
    assert json.loads(obj.choices[0].text) == {}
    bad = {
        "model": "sw",
        "prompt": "x",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": {"type": "nonsense"}},
        },
    }
    assert_error(post(server, "/v1/completions", bad), 400, "response_format")


def test_created_fingerprint_and_user_are_per_answer_and_logged(server, client):
    import time

    from lingualift.data.traffic import read_segments

    before = int(time.time())
    raw = client.completions.with_raw_response.create(
        model="sw", prompt="jambo", max_tokens=2, user="user-42"
    )
    answer = raw.parse()
    assert before <= answer.created <= int(time.time())
    assert answer.system_fingerprint == "sw/v1"
    request_id = raw.headers["x-request-id"]
    folder = server[0].traffic.folder

    def logged():
        rows = read_segments(folder, include_partial=True)
        return next((r for r in rows if r["id"] == request_id), None)

    assert wait_for(logged, what="the traffic-log row")["user"] == "user-42"


def test_the_models_generation_config_gives_the_defaults(tmp_path, store):
    """As vLLM's --generation-config auto: what a request leaves out comes from the model's
    generation_config.json (here max_new_tokens 5 and top_k 1, which makes sampling greedy)."""
    model_dir = save_tiny_causal_lm(tmp_path / "model", "llama", **TINY)
    (model_dir / "generation_config.json").write_text(
        json.dumps({"max_new_tokens": 5, "top_k": 1, "temperature": 0.9, "eos_token_id": 2})
    )
    with live_server(serve_config(model_dir, store, tmp_path)) as (_, url):
        client = openai_client(url)
        extra = {"ignore_eos": True}
        default = client.completions.create(model="sw", prompt="jambo", seed=4, extra_body=extra)
        assert default.usage.completion_tokens == 5
        greedy = client.completions.create(
            model="sw", prompt="jambo", max_tokens=5, temperature=0, extra_body=extra
        )
        assert default.choices[0].text == greedy.choices[0].text
        unbounded = client.completions.create(
            model="sw",
            prompt="jambo",
            max_tokens=24,
            seed=4,
            extra_body={**extra, "top_k": 0},  # the request's own value wins
        )
        assert unbounded.usage.completion_tokens == 24
        longer_greedy = client.completions.create(
            model="sw", prompt="jambo", max_tokens=24, temperature=0, extra_body=extra
        )
        assert unbounded.choices[0].text != longer_greedy.choices[0].text


def test_streams_carry_every_choice_by_its_index(client):
    body = dict(model="sw", prompt=["jambo", "salut"], n=2, max_tokens=5, **GREEDY)
    whole = client.completions.create(**body)
    chunks = list(
        client.completions.create(stream=True, stream_options={"include_usage": True}, **body)
    )
    texts, finished = ["", "", "", ""], [None] * 4
    for chunk in chunks[:-1]:
        (choice,) = chunk.choices
        texts[choice.index] += choice.text
        if choice.finish_reason:
            finished[choice.index] = choice.finish_reason
    assert texts == [c.text for c in whole.choices] and finished == ["length"] * 4
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens == 20
    messages = [{"role": "user", "content": "jambo"}]
    chat = list(
        client.chat.completions.create(
            model="fr", messages=messages, n=2, max_tokens=4, stream=True, **GREEDY
        )
    )
    roles = [c.choices[0].index for c in chat if c.choices[0].delta.role == "assistant"]
    assert roles == [0, 1]
    contents = ["", ""]
    for chunk in chat:
        contents[chunk.choices[0].index] += chunk.choices[0].delta.content or ""
    assert contents[0] == contents[1] != ""  # greedy choices of one prompt agree

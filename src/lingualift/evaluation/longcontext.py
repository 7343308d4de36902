"""Long-context tasks in the style of OneRuler, generated at chosen lengths in the target language.

* ``niah_single``: one "magic number" sentence hidden in a haystack; give the number.
* ``niah_multi``: several numbers for the same key; give all of them.
* ``niah_none``: like single, but half of the haystacks hold a needle with a
  *different* key, so the right answer is the language's word for "none".
* ``cwe``: a numbered list of words where ten words recur far more often than
  the rest; name those ten.

Haystacks are verses of the embedded corpus in the target language (books
39-66 by default, so evaluation text never overlaps training slices that use
the Torah), or any texts you pass. Instructions, needles and the word "none" are
written in the target language for the languages in :data:`TEMPLATES`.
Scoring is exact match: every expected value must appear in the answer (NIAH,
case-insensitive, as whole numbers), or the answer must contain the "none"
word and no number; for ``cwe`` the score is the share of the ten words named.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence
from typing import Any

from lingualift.errors import LingualiftError, require
from lingualift.evaluation.perplexity import check_context_length
from lingualift.languages import normalize_language

TASKS = ("niah_single", "niah_multi", "niah_none", "cwe")


@dataclasses.dataclass(frozen=True)
class Template:
    needle: str
    """One needle sentence, with {key} and {value}."""
    question: str
    """The NIAH instruction, with {key}; placed before and after the haystack."""
    none: str
    """The word that means "there is none"."""
    cwe: str
    """The common-word instruction, with {k}."""


TEMPLATES: dict[str, Template] = {
    "en": Template(
        "The special magic number for {key} is: {value}.",
        "Some special magic numbers are hidden in the text below. What are all the special magic "
        'numbers for {key}? If there is none, answer "none".',
        "none",
        "Below is a numbered list of words. Which {k} words appear most often? List them.",
    ),
    "sw": Template(
        "Nambari maalum ya kichawi ya {key} ni: {value}.",
        "Nambari maalum za kichawi zimefichwa katika maandishi hapa chini. Nambari zote maalum "
        'za kichawi za {key} ni zipi? Kama hakuna, jibu "hakuna".',
        "hakuna",
        "Hapa chini kuna orodha ya maneno yaliyohesabiwa. Ni maneno {k} gani yanayojitokeza "
        "mara nyingi zaidi? Yaorodheshe.",
    ),
    "fr": Template(
        "Le nombre magique spécial pour {key} est : {value}.",
        "Des nombres magiques spéciaux sont cachés dans le texte ci-dessous. Quels sont tous les "
        "nombres magiques spéciaux pour {key} ? S'il n'y en a aucun, répondez « aucun ».",
        "aucun",
        "Voici une liste numérotée de mots. Quels sont les {k} mots les plus fréquents ? "
        "Énumérez-les.",
    ),
    "de": Template(
        "Die besondere magische Zahl für {key} lautet: {value}.",
        "Im folgenden Text sind besondere magische Zahlen versteckt. Welches sind alle "
        "besonderen magischen Zahlen für {key}? Wenn es keine gibt, antworte „keine“.",
        "keine",
        "Unten steht eine nummerierte Liste von Wörtern. Welche {k} Wörter kommen am häufigsten "
        "vor? Zähle sie auf.",
    ),
    "es": Template(
        "El número mágico especial para {key} es: {value}.",
        "En el texto siguiente hay números mágicos especiales escondidos. ¿Cuáles son todos los "
        "números mágicos especiales para {key}? Si no hay ninguno, responde «ninguno».",
        "ninguno",
        "A continuación hay una lista numerada de palabras. ¿Cuáles son las {k} palabras más "
        "frecuentes? Enuméralas.",
    ),
    "pt": Template(
        "O número mágico especial para {key} é: {value}.",
        "Há números mágicos especiais escondidos no texto abaixo. Quais são todos os números "
        'mágicos especiais para {key}? Se não houver nenhum, responda "nenhum".',
        "nenhum",
        "Abaixo está uma lista numerada de palavras. Quais são as {k} palavras mais frequentes? "
        "Liste-as.",
    ),
    "it": Template(
        "Il numero magico speciale per {key} è: {value}.",
        "Nel testo seguente sono nascosti dei numeri magici speciali. Quali sono tutti i numeri "
        'magici speciali per {key}? Se non ce n\'è nessuno, rispondi "nessuno".',
        "nessuno",
        "Di seguito c'è un elenco numerato di parole. Quali sono le {k} parole più frequenti? "
        "Elencale.",
    ),
    "ru": Template(
        "Особое магическое число для {key}: {value}.",
        "В тексте ниже спрятаны особые магические числа. Каковы все особые магические числа для "
        "{key}? Если их нет, ответь «нет».",
        "нет",
        "Ниже приведён пронумерованный список слов. Какие {k} слов встречаются чаще всего? "
        "Перечисли их.",
    ),
    "zh": Template(
        "{key}的特殊魔法数字是：{value}。",
        "下面的文本中隐藏着一些特殊魔法数字。{key}的所有特殊魔法数字是什么？如果没有，请回答“无”。",
        "无",
        "下面是一个编号的词语列表。出现次数最多的{k}个词是哪些？请列出它们。",
    ),
    "ja": Template(
        "{key}の特別な魔法の数字は{value}です。",
        "以下の文章には特別な魔法の数字が隠されています。{key}の特別な魔法の数字をすべて答えて"
        "ください。ない場合は「なし」と答えてください。",
        "なし",
        "以下は番号付きの単語リストです。最も多く出現する{k}個の単語はどれですか。列挙してください。",
    ),
    "hi": Template(
        "{key} के लिए विशेष जादुई संख्या है: {value}।",
        "नीचे दिए गए पाठ में कुछ विशेष जादुई संख्याएँ छिपी हैं। {key} के लिए सभी विशेष जादुई "
        'संख्याएँ क्या हैं? यदि कोई नहीं है, तो "कोई नहीं" उत्तर दें।',
        "कोई नहीं",
        "नीचे शब्दों की एक क्रमांकित सूची है। सबसे अधिक बार आने वाले {k} शब्द कौन से हैं? उन्हें सूचीबद्ध करें।",
    ),
    "id": Template(
        "Angka ajaib khusus untuk {key} adalah: {value}.",
        "Beberapa angka ajaib khusus tersembunyi dalam teks di bawah ini. Apa saja semua angka "
        'ajaib khusus untuk {key}? Jika tidak ada, jawab "tidak ada".',
        "tidak ada",
        "Di bawah ini ada daftar kata bernomor. Manakah {k} kata yang paling sering muncul? "
        "Sebutkan.",
    ),
    "tr": Template(
        "{key} için özel sihirli sayı: {value}.",
        "Aşağıdaki metinde bazı özel sihirli sayılar gizlidir. {key} için tüm özel sihirli "
        'sayılar nelerdir? Hiç yoksa "yok" diye cevap ver.',
        "yok",
        "Aşağıda numaralı bir kelime listesi var. En sık geçen {k} kelime hangileridir? Sırala.",
    ),
    "vi": Template(
        "Con số ma thuật đặc biệt của {key} là: {value}.",
        "Một số con số ma thuật đặc biệt được giấu trong văn bản dưới đây. Tất cả các con số "
        'ma thuật đặc biệt của {key} là gì? Nếu không có, hãy trả lời "không có".',
        "không có",
        "Dưới đây là một danh sách từ được đánh số. {k} từ nào xuất hiện nhiều nhất? Hãy liệt "
        "kê chúng.",
    ),
}

# Needle keys: short, script-neutral, unlikely to occur in the haystack.
KEYS = ("Q-ALPHA", "Q-BRAVO", "Q-DELTA", "Q-KILO", "Q-LIMA", "Q-OSCAR", "Q-SIERRA", "Q-TANGO")


@dataclasses.dataclass
class LongContextItem:
    """One generated long-context prompt with its expected answer."""

    id: str
    task: str
    lang: str
    length: int
    """Target prompt length in tokens."""
    prompt: str
    answers: list[str]
    """Expected values (numbers or words); empty for 'none'."""
    none_word: str = "none"


def template(lang: str) -> Template:
    code = normalize_language(lang)
    if code not in TEMPLATES:
        raise LingualiftError(
            f"No long-context instructions for {code!r}; use one of {', '.join(TEMPLATES)}."
        )
    return TEMPLATES[code]


def haystack_texts(lang: str, books: str = "39-66") -> list[str]:
    """Sentences of the embedded corpus in ``lang`` to build haystacks from."""
    from lingualift.data import ParallelCorpus

    texts = [r.text for r in ParallelCorpus().monolingual(normalize_language(lang), books)]
    require(texts, f"The embedded corpus has no text in {lang!r} for books {books}.")
    return texts


def _fill(tokenizer, sentences: Sequence[str], budget: int, rng: random.Random) -> list[str]:
    """Consecutive sentences (from a random start) totalling about ``budget`` tokens."""
    start = rng.randrange(len(sentences))
    out, used, i = [], 0, start
    while used < budget:
        sentence = sentences[i % len(sentences)]
        used += len(tokenizer.encode(" " + sentence, add_special_tokens=False))
        out.append(sentence)
        i += 1
        if i - start > 10 * len(sentences):
            break
    return out


def _assemble(instruction: str, body: str, lang: str) -> str:
    messages = f"{instruction}\n\n{body}\n\n{instruction}\n"
    answer = {"en": "Answer:", "sw": "Jibu:", "fr": "Réponse :", "de": "Antwort:"}.get(lang, "→")
    return f"{messages}{answer}"


def make_niah(
    tokenizer: Any,
    lang: str,
    length: int,
    n: int = 10,
    task: str = "niah_single",
    texts: Sequence[str] | None = None,
    seed: int = 0,
    n_values: int = 3,
    model: Any = None,
) -> list[LongContextItem]:
    """``n`` needle-in-a-haystack prompts of about ``length`` tokens in ``lang``."""
    require(task in TASKS[:3], f"Unknown NIAH task {task!r}; use one of {', '.join(TASKS[:3])}.")
    require(length >= 256, f"length must be at least 256 tokens, got {length}.")
    if model is not None:
        check_context_length(model, length, what="length")
    tpl = template(lang)
    code = normalize_language(lang)
    sentences = list(texts) if texts is not None else haystack_texts(code)
    rng = random.Random(f"{seed}-{task}-{code}-{length}")
    items = []
    for i in range(n):
        key = rng.choice(KEYS)
        instruction = tpl.question.format(key=key)
        count = n_values if task == "niah_multi" else 1
        values = [str(rng.randrange(1_000_000, 10_000_000)) for _ in range(count)]
        absent = task == "niah_none" and i % 2 == 0
        needle_key = rng.choice([k for k in KEYS if k != key]) if absent else key
        needles = [tpl.needle.format(key=needle_key, value=v) for v in values]
        overhead = len(tokenizer.encode(_assemble(instruction, "", code)))
        overhead += sum(len(tokenizer.encode(" " + x, add_special_tokens=False)) for x in needles)
        body = _fill(tokenizer, sentences, max(length - overhead, 16), rng)
        for needle in needles:
            body.insert(rng.randrange(len(body) + 1), needle)
        items.append(
            LongContextItem(
                id=f"{task}-{code}-{length}-{i}",
                task=task,
                lang=code,
                length=length,
                prompt=_assemble(instruction, " ".join(body), code),
                answers=[] if absent else values,
                none_word=tpl.none,
            )
        )
    return items


def make_cwe(
    tokenizer: Any,
    lang: str,
    length: int,
    n: int = 10,
    k: int = 10,
    texts: Sequence[str] | None = None,
    seed: int = 0,
    model: Any = None,
) -> list[LongContextItem]:
    """``n`` common-word-extraction prompts: ``k`` words recur 30x, the others 3x."""
    require(length >= 256, f"length must be at least 256 tokens, got {length}.")
    if model is not None:
        check_context_length(model, length, what="length")
    tpl = template(lang)
    code = normalize_language(lang)
    sentences = list(texts) if texts is not None else haystack_texts(code)
    vocab = sorted({w for s in sentences for w in re.findall(r"[^\W\d_]{3,}", s.lower())})
    require(len(vocab) > 2 * k, f"Too few distinct words in the {code} texts for cwe.")
    rng = random.Random(f"{seed}-cwe-{code}-{length}")
    instruction = tpl.cwe.format(k=k)
    overhead = len(tokenizer.encode(_assemble(instruction, "", code)))
    items = []
    for i in range(n):
        words = rng.sample(vocab, len(vocab))
        common, rare = words[:k], words[k:]
        listing: list[str] = [w for w in common for _ in range(30)]
        per_word = len(tokenizer.encode(f" 1. {common[0]}", add_special_tokens=False))
        room = max((length - overhead) // max(per_word, 1) - len(listing), 3 * k)
        for w in rare[: room // 3]:
            listing.extend([w] * 3)
        rng.shuffle(listing)
        body = "\n".join(f"{j + 1}. {w}" for j, w in enumerate(listing))
        items.append(
            LongContextItem(
                id=f"cwe-{code}-{length}-{i}",
                task="cwe",
                lang=code,
                length=length,
                prompt=_assemble(instruction, body, code),
                answers=common,
                none_word=tpl.none,
            )
        )
    return items


def score(item: LongContextItem, output: str) -> float:
    """Exact-match score of one answer: 1.0/0.0 for NIAH, share of words named for cwe."""
    text = output.strip().lower()
    if item.task == "cwe":
        named = set(re.findall(r"[^\W\d_]+", text))
        return sum(w in named for w in item.answers) / len(item.answers)
    numbers = set(re.findall(r"\d+", text))
    if not item.answers:
        return float(item.none_word.lower() in text or "none" in text) * float(not numbers)
    return float(all(v in numbers for v in item.answers))


def evaluate_longcontext(
    model: Any,
    tokenizer: Any,
    items: Sequence[LongContextItem],
    batch_size: int = 1,
    apply: Any = None,
    max_new_tokens: int = 48,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Generate an answer for each item and score it; one dict per item."""
    from lingualift.evaluation.mcq import language_context
    from lingualift.generation import generate_texts

    require(items, "No long-context items to evaluate; choose tasks, langs and lengths.")
    for item in items:
        check_context_length(model, item.length + max_new_tokens, what="length + max_new_tokens")
    completions = generate_texts(
        model,
        tokenizer,
        [it.prompt for it in items],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        stop=["\n\n"],
        context=language_context(apply, [it.lang for it in items]),
        progress=progress,
    )
    outputs = [c.text for c in completions]
    return [
        {
            "id": it.id,
            "task": it.task,
            "lang": it.lang,
            "length": it.length,
            "prompt_tokens": len(tokenizer.encode(it.prompt)),
            "target": it.answers or [it.none_word],
            "output": out,
            "score": score(it, out),
        }
        for it, out in zip(items, outputs, strict=True)
    ]


def longcontext_results(
    samples: Sequence[dict[str, Any]], model_info: dict[str, Any], log_samples: bool = False
) -> dict:
    """lm-eval-shaped results: a task per (task, language, length) in groups per task and
    (task, language); with ``log_samples`` the per-sample records in lm-eval's format."""
    from collections import defaultdict

    from lingualift.evaluation.results import mean_stderr, sample_record

    leaves: dict[str, list[dict[str, Any]]] = defaultdict(list)
    subtasks: dict[str, list[str]] = defaultdict(list)
    for s in samples:
        group, lang_group = s["task"], f"{s['task']}_{s['lang']}"
        leaf = f"{lang_group}_{s['length']}"
        leaves[leaf].append(s)
        for parent, child in ((group, lang_group), (lang_group, leaf)):
            if child not in subtasks[parent]:
                subtasks[parent].append(child)

    def members(name: str) -> list[dict[str, Any]]:
        return leaves[name] if name in leaves else [m for c in subtasks[name] for m in members(c)]

    results = {}
    for name in sorted([*subtasks, *leaves]):
        scores = [m["score"] for m in members(name)]
        results[name] = {
            "name": name,
            "alias": name,
            "sample_len": len(scores),
            "acc,none": sum(scores) / len(scores),
            "acc_stderr,none": mean_stderr(scores),
        }
    out: dict[str, Any] = {
        "results": results,
        "groups": {g: results[g] for g in sorted(subtasks)},
        "group_subtasks": {g: sorted(subtasks[g]) for g in sorted(subtasks)},
        "configs": {
            name: {
                "task": name,
                "output_type": "generate_until",
                "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
                "metadata": {"version": 0.0},
            }
            for name in sorted(leaves)
        },
        "versions": {name: 0.0 for name in results},
        "n-shot": {name: 0 for name in results},
        "higher_is_better": {name: {"acc": True} for name in results},
        "n-samples": {
            name: {"original": len(m), "effective": len(m)} for name, m in sorted(leaves.items())
        },
        "config": model_info,
    }
    if log_samples:
        out["samples"] = {
            name: [
                sample_record(
                    i,
                    {k: v for k, v in m.items() if k not in ("output", "score")},
                    " | ".join(map(str, m["target"])),
                    m.get("prompt") or m["id"],
                    arguments={"gen_args_0": {"arg_0": m.get("prompt") or m["id"], "arg_1": {}}},
                    resps=[[m["output"]]],
                    filtered_resps=[m["output"]],
                    acc=float(m["score"]),
                )
                for i, m in enumerate(members_)
            ]
            for name, members_ in sorted(leaves.items())
        }
    return out

"""Language identifiers compared on short queries and sentences of the embedded corpus's 22 languages.

For every shipped backend of :mod:`lingualift.langid` (py3langid, lingua, CLD3,
fastText's lid.176 lite model), on verses of the embedded parallel corpus:

* queries: per language, ``--per-language`` verses drawn from the Old Testament
  (calibration split) and as many from the New Testament (held-out split); each
  verse gives a 10-20 character query, a 20-40 character query (its beginning,
  cut at a word end when one falls in the range) and the whole verse (a sentence);
* accuracy per language and length on the held-out split (the top language,
  normalised to lingualift's codes, equals the verse's language);
* calibration: the threshold is the lowest confidence at which the short queries
  (10-40 characters) of the calibration split are right at least 95% of the time
  when answered; on the held-out split, the precision and coverage (share answered)
  at that threshold, a reliability table (10 confidence bins) and its expected
  calibration error;
* cost: load time (first answer, model loading included), microseconds per query
  after that, and the growth of resident memory from loading and running the model;
  each backend runs in its own process.

Writes the figures to ``--out`` (JSON) and the tables into ``--md`` between the
``langid_compare`` markers (``--tables-only`` rewrites the tables from the JSON). Light CPU work (a few minutes; lingua's first load is
most of it):

    nice -n 10 python benchmarks/langid_compare.py --per-language 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

BUCKETS = {"10-20": (10, 20), "20-40": (20, 40), "sentence": None}
SHORT = ("10-20", "20-40")
TARGET_PRECISION = 0.95
AFRICAN = ("sw", "yo", "ha", "ig", "zu", "xh", "so", "am", "sn", "st", "tn", "ts", "rw", "mg",
           "ny", "lg", "om", "ln", "wo", "ak", "ti", "ff", "bm")  # fmt: skip
ASIAN = ("hi", "bn", "ur", "pa", "gu", "mr", "ta", "te", "kn", "ml", "si", "ne", "my", "km",
         "lo", "th", "vi", "id", "ms", "tl", "jv", "su", "ceb", "zh", "ja", "ko", "fa", "ps",
         "kk", "ky", "uz", "tg", "mn")  # fmt: skip
ASKED = {"wo": "Wolof", "ak": "Twi (Akan)", "ny": "Chichewa", "ti": "Tigrinya",
         "ff": "Fula", "bm": "Bambara"}  # fmt: skip
BEGIN, END = "<!-- langid_compare:begin -->", "<!-- langid_compare:end -->"


def cut(text: str, low: int, high: int, rng) -> str | None:
    """The verse's beginning, ``low``-``high`` characters, ending at a word end where one fits."""
    text = " ".join(text.split())
    if len(text) < low:
        return None
    target = int(rng.integers(low, min(high, len(text)) + 1))
    end = text.find(" ", target)
    if end == -1:
        end = len(text)
    if end > high:  # no word end in range (long word, or no spaces: zh/ja): cut there
        back = text.rfind(" ", 0, target)
        end = back if back >= low else target
    return text[:end].strip() or None


def make_queries(per_language: int, seed: int) -> dict[str, list[dict]]:
    """``{"calibration": [...], "heldout": [...]}`` of ``{lang, bucket, text}`` queries."""
    import numpy as np

    from lingualift.data.sources import parse_corpus_spec, read_corpus

    rng = np.random.default_rng(seed)
    out: dict[str, list[dict]] = {}
    for split, books in (("calibration", "ot"), ("heldout", "nt")):
        records = read_corpus(parse_corpus_spec(f"corpus:all:{books}:{per_language}"), seed)
        queries = []
        for record in records:
            for bucket, span in BUCKETS.items():
                text = (
                    " ".join(record.text.split()) if span is None else cut(record.text, *span, rng)
                )
                if text:
                    queries.append({"lang": record.lang, "bucket": bucket, "text": text})
        out[split] = queries
    return out


def resident_mb() -> float:
    """The process's resident memory now (Linux ``/proc``), in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_backend(name: str, queries: dict[str, list[dict]]) -> dict:
    """One backend's answers to every query, and its costs (runs in a child process)."""
    import importlib.metadata

    from lingualift.langid import BACKENDS, PACKAGES, known_languages

    before_mb = resident_mb()
    started = time.perf_counter()
    backend = BACKENDS[name]()
    backend.classify("Hello, how are you today?")
    load_s = time.perf_counter() - started
    answers: dict[str, list[tuple[str | None, float]]] = {}
    seconds = 0.0
    count = 0
    for split, items in queries.items():
        answers[split] = []
        for item in items:
            tick = time.perf_counter()
            code, confidence = backend.classify(item["text"])
            seconds += time.perf_counter() - tick
            count += 1
            answers[split].append((code, confidence))
    return {
        "package": f"{PACKAGES[name]}=={importlib.metadata.version(PACKAGES[name])}",
        "labels": len(backend.labels()),
        "known": sorted(known_languages(backend)),
        "load_s": round(load_s, 2),
        "us_per_query": round(1e6 * seconds / count, 1),
        "model_rss_mb": round(resident_mb() - before_mb),
        "answers": answers,
    }


def canonical(code: str | None) -> str | None:
    from lingualift.langid import canonical_code

    return canonical_code(code) if code else None


def threshold_for(confidences: list[float], correct: list[bool], target: float) -> float | None:
    """Lowest confidence t whose answers at or above t are right at least ``target`` of the time."""
    order = sorted(range(len(confidences)), key=lambda i: -confidences[i])
    best = None
    right = 0
    for rank, i in enumerate(order, start=1):
        right += correct[i]
        last = rank == len(order) or confidences[order[rank]] < confidences[i]
        if last and right / rank >= target:
            best = confidences[i]
    return best


def at_threshold(confidences: list[float], correct: list[bool], t: float) -> dict:
    answered = [c for conf, c in zip(confidences, correct, strict=True) if conf >= t]
    return {
        "precision": round(sum(answered) / len(answered), 4) if answered else None,
        "coverage": round(len(answered) / len(confidences), 4),
        "accuracy": round(sum(answered) / len(confidences), 4),  # right and answered
    }


def reliability(
    confidences: list[float], correct: list[bool], bins: int = 10
) -> tuple[list, float]:
    table, ece, total = [], 0.0, len(confidences)
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [
            (conf, c)
            for conf, c in zip(confidences, correct, strict=True)
            if low <= conf < high or (b == bins - 1 and conf == 1.0)
        ]
        if not members:
            continue
        mean_conf = sum(m[0] for m in members) / len(members)
        acc = sum(m[1] for m in members) / len(members)
        ece += len(members) / total * abs(acc - mean_conf)
        table.append({"bin": f"{low:.1f}-{high:.1f}", "n": len(members),
                      "confidence": round(mean_conf, 3), "accuracy": round(acc, 3)})  # fmt: skip
    return table, round(ece, 4)


def summarise(name: str, raw: dict, queries: dict[str, list[dict]]) -> dict:
    from lingualift.langid import CALIBRATED_MIN_CONFIDENCE

    def scored(split: str, buckets) -> tuple[list[float], list[bool]]:
        conf, right = [], []
        for item, (code, c) in zip(queries[split], raw["answers"][split], strict=True):
            if item["bucket"] in buckets:
                conf.append(c)
                right.append(canonical(code) == item["lang"])
        return conf, right

    accuracy: dict[str, dict[str, float]] = {}
    for bucket in BUCKETS:
        per_lang: dict[str, list[bool]] = {}
        for item, (code, _) in zip(queries["heldout"], raw["answers"]["heldout"], strict=True):
            if item["bucket"] == bucket:
                per_lang.setdefault(item["lang"], []).append(canonical(code) == item["lang"])
        accuracy[bucket] = {lang: round(sum(v) / len(v), 3) for lang, v in sorted(per_lang.items())}
        everything = [x for v in per_lang.values() for x in v]
        accuracy[bucket]["all"] = round(sum(everything) / len(everything), 4)
    conf, right = scored("calibration", SHORT)
    t = threshold_for(conf, right, TARGET_PRECISION)
    heldout = {}
    for label, buckets in (("short", SHORT), ("sentence", ("sentence",))):
        c, r = scored("heldout", buckets)
        heldout[label] = at_threshold(c, r, t if t is not None else 1.01)
        heldout[label]["at_0.5"] = at_threshold(c, r, 0.5)
    table, ece = reliability(*scored("heldout", SHORT))
    return {
        **{k: v for k, v in raw.items() if k != "answers"},
        "accuracy": accuracy,
        "threshold": None if t is None else round(t, 4),
        "threshold_in_use": CALIBRATED_MIN_CONFIDENCE.get(name),
        "calibration_split_short": at_threshold(conf, right, t if t is not None else 1.01),
        "heldout_at_threshold": heldout,
        "reliability_short": table,
        "ece_short": ece,
    }


def choose(results: dict[str, dict]) -> tuple[str, str]:
    """The default: best held-out short-query accuracy (answered and right at its threshold),
    then coverage of African and Asian languages; the reason in words."""

    def key(name: str):
        r = results[name]
        short = r["heldout_at_threshold"]["short"]["accuracy"]
        wide = len(set(r["known"]) & set(AFRICAN + ASIAN))
        return (round(short, 2), wide)

    ranked = sorted(results, key=key, reverse=True)
    score = {n: results[n]["heldout_at_threshold"]["short"]["accuracy"] for n in ranked}
    others = ", ".join(f"{n} {score[n]:.3f}" for n in ranked[1:])
    why = (
        f"the largest share of held-out short queries answered and right at its calibrated "
        f"threshold, {score[ranked[0]]:.3f} (then {others})"
    )
    return ranked[0], why


def markdown(report: dict) -> str:
    results = report["identifiers"]
    names = list(results)
    lines = [
        f"Command: `{report['command']}` ({report['per_language']} verses per language and split, "
        f"seed {report['seed']}; {report['machine']}).",
        "",
        "**Accuracy per language and length** (held-out New Testament verses; the identifier's top "
        "language, normalised to lingualift's codes, is the verse's language; no threshold):",
        "",
    ]
    for bucket in BUCKETS:
        title = {"10-20": "10-20 characters", "20-40": "20-40 characters",
                 "sentence": "whole verse"}[bucket]  # fmt: skip
        lines += [f"*{title}*", "", "| language | " + " | ".join(names) + " |",
                  "|---|" + "---:|" * len(names)]  # fmt: skip
        langs = [k for k in results[names[0]]["accuracy"][bucket] if k != "all"]
        for lang in [*langs, "all"]:
            cells = [f"{results[n]['accuracy'][bucket].get(lang, float('nan')):.2f}" for n in names]
            label = "**all**" if lang == "all" else lang
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "**Calibration and cost** (threshold: lowest confidence at which the calibration split's "
        "10-40 character queries are right 95% of the time when answered; precision / coverage "
        "on the held-out split at that threshold, and at 0.5 for comparison; ECE over 10 bins of "
        "the held-out short queries; time per query after loading, one thread):",
        "",
        "| identifier | package | threshold | short: precision / coverage | short at 0.5 | "
        "sentences: precision / coverage | ECE (short) | us / query | load s | model MB |",
        "|---|---|---:|---|---|---|---:|---:|---:|---:|",
    ]
    for n in names:
        r = results[n]
        h = r["heldout_at_threshold"]
        t = "none" if r["threshold"] is None else f"{r['threshold']:.3f}"
        lines.append(
            f"| {n} | {r['package']} | {t} | {h['short']['precision']} / {h['short']['coverage']}"
            f" | {h['short']['at_0.5']['precision']} / {h['short']['at_0.5']['coverage']}"
            f" | {h['sentence']['precision']} / {h['sentence']['coverage']} | {r['ece_short']}"
            f" | {r['us_per_query']} | {r['load_s']} | {r['model_rss_mb']} |"
        )
    lines += ["", "**Coverage** (canonical codes each identifier can answer):", "",
              "| identifier | labels | corpus languages (of 22) | African (of "
              f"{len(AFRICAN)}) | Asian (of {len(ASIAN)}) | "
              + " | ".join(ASKED.values()) + " |",
              "|---|---:|---:|---:|---:|" + "---|" * len(ASKED)]  # fmt: skip
    for n in names:
        known = set(results[n]["known"])
        lines.append(
            f"| {n} | {results[n]['labels']} | {len(known & set(report['corpus_languages']))}"
            f" | {len(known & set(AFRICAN))} | {len(known & set(ASIAN))} | "
            + " | ".join("yes" if code in known else "no" for code in ASKED)
            + " |"
        )
    lines += ["", "African languages each knows (of " + ", ".join(AFRICAN) + "):", ""]
    for n in names:
        known = [code for code in AFRICAN if code in set(results[n]["known"])]
        lines.append(f"* {n}: {', '.join(known) or 'none'}")
    chosen = results[report["chosen"]]
    lines += ["", f"Reliability of {report['chosen']}'s confidence on the held-out short queries "
              "(ideal: accuracy = confidence):", "",
              "| confidence bin | queries | mean confidence | accuracy |", "|---|---:|---:|---:|"]  # fmt: skip
    for row in chosen["reliability_short"]:
        lines.append(f"| {row['bin']} | {row['n']} | {row['confidence']} | {row['accuracy']} |")
    lines += ["", f"Chosen default: **{report['chosen']}** — {report['why']}."]
    return "\n".join(lines)


def write_markdown(path: Path, table: str) -> None:
    from lingualift.atomic import atomic_write_text

    text = (
        path.read_text("utf-8")
        if path.is_file()
        else f"# Language identification\n\n{BEGIN}\n{END}\n"
    )
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(path, f"{head}{BEGIN}\n{table}\n{END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-language", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--identifiers", default="py3langid,lingua,cld3,fasttext-lite")
    parser.add_argument("--out", default="docs/langid.json")
    parser.add_argument("--md", default="docs/langid.md")
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="rewrite --md's tables from --out, measure nothing",
    )
    args = parser.parse_args()
    if args.tables_only:
        write_markdown(Path(args.md), markdown(json.loads(Path(args.out).read_text("utf-8"))))
        return 0

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from lingualift.atomic import atomic_write_text
    from lingualift.data import CORPUS_LANGUAGES

    queries = make_queries(args.per_language, args.seed)
    results = {}
    for name in [n.strip() for n in args.identifiers.split(",") if n.strip()]:
        print(f"{name}: {sum(map(len, queries.values()))} queries", flush=True)
        context = multiprocessing.get_context("spawn")  # own process: own memory, own load time
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            raw = pool.submit(run_backend, name, queries).result()
        results[name] = summarise(name, raw, queries)
        r = results[name]
        print(f"  accuracy short {r['accuracy']['10-20']['all']:.3f}/{r['accuracy']['20-40']['all']:.3f}"
              f" sentence {r['accuracy']['sentence']['all']:.3f}, threshold {r['threshold']},"
              f" {r['us_per_query']} us/query", flush=True)  # fmt: skip
    chosen, why = choose(results)
    report = {
        "command": f"python benchmarks/langid_compare.py --per-language {args.per_language}"
        + (f" --seed {args.seed}" if args.seed else ""),
        "per_language": args.per_language,
        "seed": args.seed,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end",
        "corpus_languages": list(CORPUS_LANGUAGES),
        "queries": {split: len(items) for split, items in queries.items()},
        "target_precision": TARGET_PRECISION,
        "identifiers": results,
        "chosen": chosen,
        "why": why,
    }
    atomic_write_text(args.out, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    write_markdown(Path(args.md), markdown(report))
    print(f"chosen: {chosen} ({why})\nwrote {args.out} and {args.md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

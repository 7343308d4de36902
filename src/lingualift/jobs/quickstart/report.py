"""The quickstart's report: ``report.md`` (tables), ``report.json`` and ``results.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_write_text
from lingualift.config import to_dict
from lingualift.jobs.quickstart.config import QuickstartConfig
from lingualift.languages import language_name
from lingualift.stages import Stage

_VARIANT_NAMES = {
    "base": "base model",
    "lora": "LoRA adapter (training + COMPASS selection)",
    "shifcon": "ShifCon shift on the base model (no training)",
    "shifcon-trained": "ShifCon trained briefly (LoRA + shift + contrastive)",
}


def _plot_results(evals: dict[str, Any], lang: str, path: Path) -> Path:
    from lingualift.plotting import pyplot, save_figure

    plt = pyplot()
    names = list(evals)
    panels = [
        (f"held-out NLL, {lang} (lower is better)", [evals[n]["nll"][lang] for n in names], None),
        ("held-out NLL, en (lower is better)", [evals[n]["nll"]["en"] for n in names], None),
        (
            f"cloze accuracy, {lang} (higher is better)",
            [evals[n]["cloze_acc_norm"] for n in names],
            [evals[n]["cloze_acc_norm_stderr"] for n in names],
        ),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    colors = ["tab:gray", "tab:blue", "tab:orange", "tab:green"][: len(names)]
    for ax, (title, values, errors) in zip(axes, panels, strict=True):
        # Bars start at zero so small differences are not drawn as large ones.
        bars = ax.bar(names, values, color=colors, yerr=errors, capsize=4 if errors else 0)
        ax.bar_label(bars, fmt="%.3f", fontsize=8, label_type="center", color="white")
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.set_ylim(0, max(values) * 1.25 or 1.0)
    axes[2].set_ylim(0, 1)
    axes[2].axhline(0.25, color="black", lw=1, ls="--", label="chance (4 options)")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def production_commands(config: QuickstartConfig, out: Path) -> dict[str, str]:
    """The commands that serve the quickstart's adapter, monitor its traffic and keep it fresh."""
    from lingualift.models import DEFAULT_MODEL

    store, traffic = out / "adapters", out / "traffic"
    model = "" if config.model == DEFAULT_MODEL else f" model={config.model}"
    lang = config.lang
    return {
        "serve": f"lingualift serve store={store}{model} langs=[{lang}] log_dir={traffic}",
        "monitor": f"lingualift monitor store={store} langs=[{lang}] input={traffic} "
        f"out_dir={out / 'monitor'}",
        "ecda": f"lingualift ecda store={store}{model} langs=[{lang}] input={traffic} "
        f"pool={out / 'data' / 'pool.jsonl'} out_dir={out / 'ecda'} follow=true",
    }


def write_report(
    config: QuickstartConfig,
    out: Path,
    stages: dict[str, Stage],
    evals: dict[str, Any],
    elapsed: float,
) -> Path:
    lang = config.lang
    data, held = stages["data"].result, stages["heldout"].result
    selections = {
        n[len("select-") :]: s.result for n, s in stages.items() if n.startswith("select-")
    }
    sc, ad, brief = (
        stages["shifcon"].result,
        stages["adapter"].result,
        stages["shifcon-train"].result,
    )
    _plot_results(evals, lang, out / "results.png")
    lines = [
        f"# lingualift quickstart: {language_name(lang)} ({lang}) on {config.model}",
        "",
        f"Training: {data['train']} {lang} verses (books {config.train_books}); target usage: "
        f"{data['usage']} verses (books {config.usage_books}); held out: books "
        f"{config.heldout_books} ({held['n_heldout']} verses per language for NLL, "
        f"{held['n_cloze']} cloze questions); pool: {data['pool']} verses in other languages.",
        "",
        f"## Selection (equal budget of {config.budget} items; JS divergence of target usage vs "
        "training, bits)",
        "",
        "| method | JS before | JS after | top languages |",
        "| --- | --- | --- | --- |",
    ]
    for method, sel in selections.items():
        top = ", ".join(f"{k} {v}" for k, v in list(sel["languages"].items())[:5])
        lines.append(f"| {method} | {sel['js_before']:.3f} | {sel['js_after']:.3f} | {top} |")
    letters = config.cloze_letters
    lines += [
        "",
        f"Cluster gaps: `select-compass/report.png`. ShifCon layer area: [{sc['a']}, {sc['b']}] "
        f"of {sc['num_layers']} layers (curve: `shifcon/layers.png`).",
        "",
        "## Evaluation",
        "",
        f"| variant | NLL {lang} | NLL en | cloze acc (per-char LL) | cloze acc (raw LL) |"
        + (" cloze acc (answer letter) |" if letters else ""),
        "| --- | --- | --- | --- | --- |" + (" --- |" if letters else ""),
    ]
    for variant, e in evals.items():
        letter = f" {e['cloze_letter_acc']:.3f} |" if letters else ""
        lines.append(
            f"| {variant} | {e['nll'][lang]:.3f} | {e['nll']['en']:.3f} | "
            f"{e['cloze_acc_norm']:.3f} ± {e['cloze_acc_norm_stderr']:.3f} | "
            f"{e['cloze_acc']:.3f} |{letter}"
        )
    lines += [
        "",
        "Variants: " + "; ".join(f"**{v}**: {_VARIANT_NAMES[v]}" for v in evals) + ".",
        f"NLL is mean token negative log-likelihood (nats) on {held['n_heldout']} held-out verses; "
        "the shift never touches English rows, so `shifcon`'s English NLL is the base model's by "
        f"construction (not scored twice). Cloze chance is 0.25. The LoRA adapter trained "
        f"{ad['steps']} steps ({ad['epochs']} epochs over {ad['train_rows']} packed rows), "
        f"stored as `{ad.get('adapter')}`.",
    ]
    if "skipped" in brief:
        lines.append(f"Brief ShifCon training was skipped ({brief['skipped']}).")
    commands = production_commands(config, out)
    deploy = stages["deploy"].result
    lines += [
        "",
        "## Into production",
        "",
        f"`{deploy['adapter']}` keeps its held-out set (`heldout.jsonl`, {deploy['heldout']} "
        f"verses: the old set an ECDA gate checks forgetting on) and its reference profile "
        f"(`reference/`, {deploy['reference']['rows']} usage verses, "
        f"{deploy['reference']['clusters']} clusters: windows of at least "
        f"{deploy['reference']['min_window']} queries) in `{deploy['path']}`. Serve it, watch "
        "its traffic for drift, and keep it fresh:",
        "",
        "```bash",
        *commands.values(),
        "```",
        "",
        "`ecda` selects from the quickstart's pool, trains the next version from this one, "
        "gates it on the held-out set and the drifted queries, and promotes or keeps it "
        f"(docs/continual.md); `lingualift adapters --store {out / 'adapters'} rollback {lang}` "
        "undoes a promotion.",
    ]
    lines += [
        "",
        "Plots: `results.png` (NLL and cloze accuracy per variant), `select-compass/report.png`, "
        "`shifcon/layers.png`, `adapter/loss.png`.",
        "",
        "| stage | seconds |",
        "| --- | --- |",
    ]
    timings = {name: stage.seconds for name, stage in stages.items()}
    lines += [f"| {k} | {v} |" for k, v in timings.items()]
    lines.append(f"\nThis run took {elapsed:.0f} s (stages finished earlier were reused).")
    report = {
        "lang": lang,
        "config": to_dict(config),
        "data": data,
        "heldout": held,
        "selection": selections,
        "adapter": ad,
        "shifcon": sc,
        "shifcon_train": brief,
        "eval": evals,
        "production": {**stages["deploy"].result, "commands": commands},
        "stage_seconds": timings,
        "elapsed_seconds": round(elapsed, 1),
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return out / "report.md"

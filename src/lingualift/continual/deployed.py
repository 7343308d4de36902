"""What is deployed in an adapter store, as the monitor sees it: languages and references.

- :func:`monitored_languages`: the languages asked for, or every language with a
  current version;
- :func:`load_reference`: the reference profile kept in a version's folder
  (current by default), or one clear error;
- :func:`build_reference`: build and save the reference of an existing version
  from a sample of the usage it was built for (``lingualift monitor
  build_reference=<usage file>``).
"""

from __future__ import annotations

from typing import Any

from lingualift.adapters.store import AdapterStore
from lingualift.atomic import recover_swap
from lingualift.continual.reference import FOLDER, Reference
from lingualift.errors import require
from lingualift.languages import normalize_language


def monitored_languages(store: AdapterStore, langs: list[str]) -> list[str]:
    """``langs`` (normalised), or every language of ``store`` that has a current version."""
    found = [normalize_language(x) for x in langs] or [
        lang for lang in store.languages() if store.current_version(lang) is not None
    ]
    require(found, f"No language to monitor: {store.root} has no current adapter; set langs=.")
    return found


def load_reference(store: AdapterStore, lang: str, version: str | None = None) -> Reference:
    """The reference profile of ``lang``'s version (current by default), or one clear error."""
    found = store.get(lang, None if version in (None, "current") else version)
    # A settling reference replaces the provisional one in one swap; finish one a crash cut.
    recover_swap(found.path / FOLDER)
    reference = Reference.load(found.path, what=found.name)
    reference.version = found.name  # a reference written inside a temp version folder has none
    return reference


def build_reference(
    store: AdapterStore,
    lang: str,
    usage: str,
    *,
    version: str | None = None,
    encoder: Any = "e5-nano",
    n_clusters: int | None = None,
    sample_size: int = 2000,
    seed: int = 0,
    backend: str = "local",
    overwrite: bool = False,
) -> Reference:
    """Build and save (in the version folder) the reference of an existing version.

    ``usage`` is a records file (or any source spec) of the queries the version was
    built for; rows in other languages are left out. ``encoder`` is a spec or an
    encoder object.
    """
    from lingualift.compass.embedding import embed_records
    from lingualift.data.sources import read_source

    found = store.get(lang, None if version in (None, "current") else version)
    records = read_source(usage, role="usage")
    mine = [r for r in records if r.lang in (None, found.lang)]
    require(
        mine, f"{usage} holds no {found.lang} queries; give the usage {found.name} was built for."
    )
    embedded = embed_records(mine, encoder, backend, progress=True)  # type: ignore[arg-type]
    reference = Reference.build(
        embedded, found.lang, n_clusters=n_clusters, seed=seed, sample_size=sample_size,
        encoder_spec=encoder if isinstance(encoder, str) else None, version=found.name,
    )  # fmt: skip
    reference.save(found.path, overwrite=overwrite)
    return reference

"""The Ray backend of the embedding: a cluster joined with lingualift shipped to its workers,
input files read on the workers, texts embedded by a pool of encoder actors (Ray 2.60).

- **Which cluster** (:func:`connect_ray`): a Ray session this process already holds is used
  as it is; else the cluster ``address`` (the ``ray_address`` key) or ``RAY_ADDRESS`` names;
  else a cluster running on this machine (``ray start --head``); else a new local one.
- **What the workers run** (:func:`worker_runtime_env`): lingualift opens its session with a
  job-level runtime environment that ships the running lingualift package to every worker
  (``py_modules``: Ray zips the package folder, stores it in the cluster's GCS and unpacks it
  on each node), so the workers of an existing cluster run the driver's code without
  lingualift installed there, and without a package registry. Its dependencies (numpy,
  the encoder's packages) must be on the workers, as Ray itself must; where they are not,
  ``ray_runtime_env`` replaces the default (e.g. ``{"pip": ["lingualift[ray]==X"]}``, which
  Ray installs per node from the registry the nodes reach, or ``{}`` for workers that have
  lingualift installed). Ray accepts local folders in ``py_modules`` only at the job level,
  so a session opened by the caller is used as it is (open it with ``worker_runtime_env()``).
- **Where the input is read** (:class:`WorkerRead`): a data file (or folder of shards) that
  Ray Data reads, ``.parquet``, ``.jsonl``/``.ndjson``, ``.csv``, ``.tsv`` (the text ones
  also ``.gz``/``.zst``/``.bz2``), is read by the workers (``ray.data.read_parquet``,
  ``read_json``, ``read_csv``) instead of the driver putting every text into the object
  store. Each vector comes back with the hash of its text, so the driver places it whatever
  order the workers read in; any text the workers did not return (a path they cannot see, a
  file Arrow parses differently from lingualift's reader) is sent from the driver
  (``ray.data.from_items``), so the result never depends on where the file was read.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lingualift.data.columns import Columns
from lingualift.data.formats import split_suffixes
from lingualift.data.readers import HF_PREFIX, is_saved_dataset, shard_files
from lingualift.data.records import text_hash
from lingualift.embed import CachedEncoder, Encoder, get_encoder
from lingualift.errors import LingualiftError, first_line

logger = logging.getLogger(__name__)

PACKAGE_EXCLUDES = ["__pycache__", "*.pyc"]
"""Left out of the shipped package (Ray's gitignore-style ``excludes``)."""
_WORKER_FORMATS = {"parquet": (None,), "jsonl": (None, "gzip", "zstd", "bz2")}
_WORKER_FORMATS |= {"csv": _WORKER_FORMATS["jsonl"], "tsv": _WORKER_FORMATS["jsonl"]}


def worker_runtime_env(runtime_env: dict[str, Any] | None = None) -> dict[str, Any]:
    """The runtime environment of the workers: ``runtime_env`` as given, or by default the
    running lingualift package shipped through the cluster (see the module docstring)."""
    if runtime_env is not None:
        return dict(runtime_env)
    import lingualift

    return {
        "py_modules": [str(Path(lingualift.__file__).resolve().parent)],
        "excludes": list(PACKAGE_EXCLUDES),
    }


def connect_ray(
    num_cpus: int = 1, address: str | None = None, runtime_env: dict[str, Any] | None = None
) -> str:
    """Connect to the Ray cluster there is, or start a local one; returns which it did.

    In order: a Ray session this process already holds is used as it is (``address``,
    when given, must name its port); the cluster ``address`` or ``RAY_ADDRESS`` names is
    joined (a failure to reach it is one sentence); otherwise a running cluster on this
    machine is joined (``address="auto"``), and when there is none a local one with
    ``num_cpus`` CPUs is started. Every session lingualift opens carries
    :func:`worker_runtime_env` of ``runtime_env``. Joining never passes ``num_cpus`` (Ray
    refuses resource settings for an existing cluster). Driver logs from the workers are
    not forwarded, and Ray's own logging is kept at warnings.
    """
    import ray

    if ray.is_initialized():
        held = ray.get_runtime_context().gcs_address
        # Hosts are spelled many ways (127.0.0.1, the node's IP, a name); the port tells clusters
        # apart well enough to catch a ray_address meant for another one.
        port = address.rpartition(":")[2] if address and not address.startswith("ray://") else ""
        if port.isdigit() and port != str(held).rpartition(":")[2]:
            raise LingualiftError(
                f"This process is already connected to the Ray cluster at {held}, not "
                f"{address}; call ray.shutdown() first or leave ray_address unset."
            )
        return "existing session"
    env = worker_runtime_env(runtime_env)
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if env:
        options["runtime_env"] = env
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        try:
            ray.init(address=target, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            named = "ray_address" if address else "RAY_ADDRESS"
            raise LingualiftError(
                f"Could not join the Ray cluster at {named}={target} ({first_line(exc)}); "
                f"start it, or fix or unset {named} to run Ray locally."
            ) from None
        return f"cluster at {target}"
    try:
        ray.init(address="auto", **options)
        return "running local cluster"
    except (ConnectionError, RuntimeError, ValueError):
        pass  # none running: start one
    ray.init(num_cpus=max(num_cpus, 1), include_dashboard=False, **options)
    return "new local cluster"


def quiet_ray_data() -> None:
    """No progress blocks or execution banners from Ray Data (lingualift shows its own)."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    for name in ("ray.data", "ray.data._internal.execution.streaming_executor"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # "Progress bars disabled ..." (lingualift turned them off on purpose).
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


# -- what the workers read ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WorkerRead:
    """A data file, or folder of shards of one format, that the Ray workers read themselves."""

    paths: tuple[str, ...]
    """Absolute paths (the workers' working folders are not the driver's)."""
    kind: str
    """parquet, jsonl, csv or tsv."""
    text: str = "text"
    """The column holding the text (after the user's column mapping)."""


def worker_read(source: str | Path, columns: Columns | None = None) -> WorkerRead | None:
    """How the workers can read ``source`` (None: the driver sends its texts instead).

    A file or folder of shards in a format Ray Data reads the way lingualift's reader does
    (module docstring); ``hf:``, ``corpus:``, saved datasets and ``.json`` files (which may
    be one array) are read on the driver.
    """
    spec = str(source).strip()
    if not spec or spec.startswith(HF_PREFIX) or spec.startswith("corpus:"):
        return None
    path = Path(spec)
    if path.is_dir():
        if is_saved_dataset(path):
            return None
        files = shard_files(path)
    else:
        files = [path] if path.is_file() else []
    kinds = {split_suffixes(f) for f in files}
    if len(kinds) != 1:
        return None  # nothing to read, or mixed formats
    kind, compression = kinds.pop()
    if kind not in _WORKER_FORMATS or compression not in _WORKER_FORMATS[kind]:
        return None
    text = (columns or Columns()).text
    return WorkerRead(tuple(str(f.resolve()) for f in files), kind, text)


def _read_dataset(source: WorkerRead) -> Any:
    """The Ray Dataset of ``source``'s text column, read by the workers."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import ray.data

    paths = list(source.paths)
    if source.kind == "parquet":
        return ray.data.read_parquet(paths, columns=[source.text])
    if source.kind == "jsonl":
        return ray.data.read_json(paths, lines=True).select_columns([source.text])
    return ray.data.read_csv(
        paths,
        # Text stays text (a column of digits is not a number) and quoted newlines are values,
        # as in lingualift's own CSV reader.
        parse_options=pcsv.ParseOptions(
            delimiter="\t" if source.kind == "tsv" else ",", newlines_in_values=True
        ),
        convert_options=pcsv.ConvertOptions(
            include_columns=[source.text], column_types={source.text: pa.string()}
        ),
    )


# -- the encoder actors ------------------------------------------------------------------------


class _EncoderActor:
    """Ray Data actor: builds the encoder once per worker, then embeds batches.

    Returns each distinct text of a batch once, as ``hash`` (:func:`text_hash`) and
    ``vector``; rows without text (null, or not text) are dropped.
    """

    factory: Callable[[], Encoder]
    column: str

    def __init__(self) -> None:
        self.encoder = self.factory()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        unique: dict[str, str] = {}
        for text in batch[self.column]:
            if isinstance(text, str):
                unique.setdefault(text_hash(text), text)
        if not unique:
            return {
                "hash": np.array([], dtype=str),
                "vector": np.zeros((0, self.encoder.dim), dtype=np.float32),
            }
        vectors = self.encoder.encode(list(unique.values()), progress=False)
        return {"hash": np.array(list(unique)), "vector": vectors}


def _actor_class(factory: Callable[[], Encoder], column: str) -> type:
    """An actor class that carries its encoder factory and text column in its definition.

    The definition travels through Ray's function table, so the actors take no
    constructor arguments from the object store, and Ray can restart one that died.
    """
    attributes = {"factory": staticmethod(factory), "column": column}
    return type("EncoderActor", (_EncoderActor,), attributes)


def _uncached(encoder: Encoder) -> Encoder:
    return encoder.encoder if isinstance(encoder, CachedEncoder) else encoder


def encoder_factory(encoder: str | Encoder) -> Callable[[], Encoder]:
    """Something picklable that rebuilds the raw encoder inside a Ray worker."""
    if isinstance(encoder, str):
        return functools.partial(get_encoder, encoder, cache=False)
    spec = getattr(encoder, "spec", None) or getattr(_uncached(encoder), "spec", None)
    if isinstance(spec, str):  # built by get_encoder: rebuild it from its spec (engines holding
        return functools.partial(get_encoder, spec, cache=False)  # C pointers do not pickle)
    raw = _uncached(encoder)
    return functools.partial(_return, raw)


def _return(value: Any) -> Any:
    return value


def embed_on_ray(
    texts: dict[str, str],
    encoder: str | Encoder,
    *,
    batch_size: int = 64,
    concurrency: int = 2,
    address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    read_from: WorkerRead | None = None,
) -> dict[str, np.ndarray]:
    """Vectors of ``texts`` (``{text_hash: text}``) by Ray Data actors, keyed by hash.

    With ``read_from`` the workers read the file and embed every row of it (the caller
    passes it only when ``texts`` are that file's rows); whatever they did not return is
    then sent from the driver.
    """
    try:
        import ray.data
    except ImportError:
        raise LingualiftError(
            "backend='ray' needs Ray Data; pip install 'lingualift[ray]'."
        ) from None
    how = connect_ray(concurrency, address, runtime_env)
    quiet_ray_data()
    found: dict[str, np.ndarray] = {}
    # Read tasks need a CPU the actors do not hold: a fixed pool on every CPU of the cluster
    # waits for them forever (Ray Data 2.60), so the pool gets at most all CPUs but one.
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if read_from is not None and cpus < 2:
        logger.info("Ray has %d CPU; the workers cannot read and embed at once", cpus)
        read_from = None
    if read_from is not None:
        actors = max(1, min(concurrency, cpus - 1))
        try:
            _collect(_read_dataset(read_from), encoder, read_from.text, batch_size, actors, found)
        except Exception as exc:  # Ray wraps a worker's error in many types
            _check_runtime_env(exc)
            logger.warning(
                "The Ray workers could not read %s (%s); sending the texts from this process.",
                read_from.paths[0],
                first_line(exc, 200),
            )
        read = sum(1 for key in texts if key in found)
        logger.info("Ray (%s): %d of %d texts read by the workers", how, read, len(texts))
    rest = [key for key in texts if key not in found]
    if rest:
        items = ray.data.from_items([{"text": texts[key]} for key in rest])
        try:
            _collect(items, encoder, "text", batch_size, concurrency, found)
        except Exception as exc:  # a worker's error, in Ray's wrapping
            _check_runtime_env(exc)
            raise
    return found


def _collect(
    dataset: Any,
    encoder: str | Encoder,
    column: str,
    batch_size: int,
    concurrency: int,
    found: dict[str, np.ndarray],
) -> None:
    import ray.data

    embedded = dataset.map_batches(
        _actor_class(encoder_factory(encoder), column),
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=max(concurrency, 1)),
        batch_format="numpy",
    )
    for batch in embedded.iter_batches(batch_format="numpy", batch_size=None):
        vectors = np.asarray(batch["vector"], dtype=np.float32)
        for key, vector in zip(batch["hash"], vectors, strict=True):
            found[str(key)] = vector


def _check_runtime_env(exc: BaseException) -> None:
    """The one sentence for workers that could not set up their runtime environment."""
    from ray.exceptions import RuntimeEnvSetupError

    if isinstance(exc, RuntimeEnvSetupError) or "RuntimeEnvSetupError" in str(exc)[:2000]:
        raise LingualiftError(
            f"The Ray workers could not set up their runtime environment ({first_line(exc)}); "
            "by default lingualift ships its own package (py_modules) and the workers need its "
            "dependencies installed, so install them there or give ray_runtime_env "
            '(e.g. {"pip": ["lingualift[ray]"]}).'
        ) from None

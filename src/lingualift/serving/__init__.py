"""Serving: an OpenAI-compatible server for one base model and every language's adapter.

* :mod:`~lingualift.serving.engine`: the batching worker (bounded queue,
  mixed-language batches with PEFT ``adapter_names``, per-row sampling,
  streaming, ShifCon per row);
* :mod:`~lingualift.serving.reload`: the adapters in memory, following the
  store's promotes and rollbacks without a restart;
* :mod:`~lingualift.serving.app`: the FastAPI routes, errors, auth, metrics;
* :mod:`~lingualift.serving.traffic`: the traffic log the drift monitor reads
  (:func:`read_segments`);
* :mod:`~lingualift.serving.vllm` and :mod:`~lingualift.serving.front`: the
  vLLM hand-off and the routing front that keeps clients unchanged;
* :func:`serve`: the job behind ``lingualift serve``.

FastAPI, uvicorn and prometheus-client come with the ``serve`` extra
(``pip install 'lingualift[serve]'``); they load on first use.
"""

from lingualift.serving.config import ServeConfig

__all__ = ["ServeConfig", "build_server", "list_segments", "read_segments", "serve"]


def __getattr__(name: str):
    if name in ("serve", "build_server"):
        from lingualift.serving import job

        return getattr(job, name)
    if name in ("read_segments", "list_segments"):
        from lingualift.serving import traffic

        return getattr(traffic, name)
    raise AttributeError(name)

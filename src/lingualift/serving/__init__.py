"""Serving components: an OpenAI-compatible server for one base model and every language's adapter.

* :mod:`~lingualift.serving.engine`: the batching worker (bounded queue,
  mixed-language batches through the adapter registry, per-row sampling,
  streaming, ShifCon per row);
* :mod:`~lingualift.serving.api_router`: the OpenAI route table, one router that
  the server (:mod:`~lingualift.serving.app`) and the routing front
  (:mod:`~lingualift.serving.front`) both include; :mod:`~lingualift.serving.http`
  the plumbing they share (key, body limit, errors, request counting);
* :mod:`~lingualift.serving.traffic`: the traffic-log writer (the schema the
  drift monitor reads with is :mod:`lingualift.data.traffic`);
* :mod:`~lingualift.serving.vllm`: the vLLM hand-off (its command and process);
  :mod:`~lingualift.serving.vllm_sync`: promotions and rollbacks loaded into a
  running vLLM through its runtime LoRA endpoints, from the routing front.

The adapters in memory, their fit checks and hot reload are
:class:`lingualift.adapters.registry.AdapterRegistry`; the job behind
``lingualift serve`` (config, building and running a server) is
:mod:`lingualift.jobs.serve`.

FastAPI, uvicorn and prometheus-client come with the ``serve`` extra
(``pip install 'lingualift[serve]'``); they load on first use.
"""

from lingualift.data.traffic import list_segments, read_segments

__all__ = ["list_segments", "read_segments"]

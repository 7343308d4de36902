"""A small stand-in for vLLM's OpenAI server (vLLM cannot run on this machine).

It speaks what the routing front and the adapter sync use, the way vLLM answers
(``vllm/entrypoints/openai/models/serving.py`` and ``serve/lora/api_router.py``):

- ``GET /v1/models``: the base model (no ``parent``) and one card per adapter
  (``root``: the path it was loaded from, ``parent``: the base model);
- ``POST /v1/completions`` and ``/v1/chat/completions``: answered with the
  ``model`` they name and a ``usage``, or vLLM's 404 for a name it does not hold;
  a prompt holding ``HOLD`` waits until :attr:`FakeVllm.release` is set (a
  request in flight across a promotion);
- ``POST /v1/load_lora_adapter`` ``{lora_name, lora_path}``: 200 with a text
  line; 400 when the name is loaded already or the folder has no
  ``adapter_config.json``; ``fail_loads`` makes the next loads fail with a 400;
- ``POST /v1/unload_lora_adapter`` ``{lora_name}``: 200, or 404 for an unknown name;
- the two LoRA routes exist only when ``runtime_lora`` is on, as vLLM serves them
  only with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``.

Every request is recorded in :attr:`FakeVllm.calls`. Run as a program
(:func:`main`, what a fake ``vllm`` executable calls), it parses ``vllm serve``'s
arguments, reads the environment variable like vLLM, and adds ``GET /fake/state``
(its argv, that variable, the calls) and ``POST /fake/exit`` (exit with code 3).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

RUNTIME_LORA_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"


def _error(message: str, kind: str, status: int) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return JSONResponse(body, status_code=status)


class FakeVllm:
    """The fake server's state and app."""

    def __init__(
        self, base: str = "tiny", loras: dict[str, str] | None = None, runtime_lora: bool = True
    ) -> None:
        self.base = base
        self.loras: dict[str, str] = dict(loras or {})
        """Adapter name -> path, in load order."""
        self.calls: list[tuple[str, Any]] = []
        """(route, body or model) of every request, in arrival order."""
        self.fail_loads = 0
        """How many of the next loads answer 400."""
        self.release = threading.Event()
        self.holding = 0
        """Requests waiting for ``release``."""
        self.app = self._build(runtime_lora)

    def served(self) -> list[str]:
        """The ``model`` of every completion request, in order."""
        return [model for route, model in self.calls if route == "completion"]

    def lora_calls(self) -> list[tuple[str, Any]]:
        return [(route, body) for route, body in self.calls if route in ("load", "unload")]

    def _build(self, runtime_lora: bool) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            cards = [{"id": self.base, "object": "model", "root": "/models/base", "parent": None}]
            cards += [
                {"id": name, "object": "model", "root": path, "parent": self.base}
                for name, path in self.loras.items()
            ]
            return {"object": "list", "data": cards}

        async def answer(request: Request, chat: bool) -> Response:
            body = await request.json()
            model = body.get("model")
            self.calls.append(("completion", model))
            if model != self.base and model not in self.loras:
                return _error(f"The model `{model}` does not exist.", "NotFoundError", 404)
            text = str(body.get("prompt") or body.get("messages"))
            if "HOLD" in text:
                self.holding += 1
                await asyncio.to_thread(self.release.wait, 30)
                self.holding -= 1
            usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
            if chat:
                message = {"role": "assistant", "content": "ok"}
                choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "stop"}
            else:
                choice = {"index": 0, "text": "ok", "finish_reason": "length", "logprobs": None}
            kind = "chat.completion" if chat else "text_completion"
            return JSONResponse(
                {
                    "id": "x",
                    "object": kind,
                    "created": 0,
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                }
            )

        @app.post("/v1/completions")
        async def completions(request: Request) -> Response:
            return await answer(request, chat=False)

        @app.post("/v1/chat/completions")
        async def chat_completions(request: Request) -> Response:
            return await answer(request, chat=True)

        if runtime_lora:

            @app.post("/v1/load_lora_adapter")
            async def load(request: Request) -> Response:
                body = await request.json()
                self.calls.append(("load", body))
                name, path = body.get("lora_name"), body.get("lora_path")
                if not name or not path:
                    return _error("Both 'lora_name' and 'lora_path' must be provided.",
                                  "InvalidUserInput", 400)  # fmt: skip
                if name in self.loras:
                    return _error(f"The lora adapter '{name}' has already been loaded.",
                                  "InvalidUserInput", 400)  # fmt: skip
                if self.fail_loads > 0:
                    self.fail_loads -= 1
                    return _error("CUDA out of memory while loading the adapter", "BadRequestError", 400)  # fmt: skip
                if not (Path(path) / "adapter_config.json").is_file():
                    return _error(f"No adapter found for {path}", "NotFoundError", 404)
                self.loras[name] = path
                return Response(f"Success: LoRA adapter '{name}' added successfully.")

            @app.post("/v1/unload_lora_adapter")
            async def unload(request: Request) -> Response:
                body = await request.json()
                self.calls.append(("unload", body))
                name = body.get("lora_name")
                if name not in self.loras:
                    return _error(f"The lora adapter '{name}' cannot be found.", "NotFoundError", 404)  # fmt: skip
                del self.loras[name]
                return Response(f"Success: LoRA adapter '{name}' removed successfully.")

        return app


def parse_serve_args(argv: list[str]) -> dict[str, Any]:
    """What the fake needs from ``vllm serve <model> --flag value ... --lora-modules a=b ...``."""
    assert argv[0] == "serve", argv
    options: dict[str, Any] = {"model": argv[1], "lora_modules": {}}
    index = 2
    while index < len(argv):
        flag = argv[index]
        if flag == "--lora-modules":
            index += 1
            while index < len(argv) and not argv[index].startswith("--"):
                name, path = argv[index].split("=", 1)
                options["lora_modules"][name] = path
                index += 1
        elif flag == "--enable-lora":
            options["enable_lora"] = True
            index += 1
        else:
            options[flag.removeprefix("--").replace("-", "_")] = argv[index + 1]
            index += 2
    return options


def main(argv: list[str]) -> None:
    """Serve like ``vllm serve`` would, on the host and port it is given."""
    import uvicorn

    options = parse_serve_args(argv)
    runtime = os.environ.get(RUNTIME_LORA_ENV, "").lower() in ("1", "true")
    fake = FakeVllm(options["served_model_name"], options["lora_modules"], runtime_lora=runtime)

    @fake.app.get("/fake/state")
    async def state() -> dict[str, Any]:
        env = {key: os.environ.get(key) for key in (RUNTIME_LORA_ENV, "VLLM_API_KEY")}
        return {"argv": argv, "env": env, "calls": fake.calls, "loras": fake.loras}

    @fake.app.post("/fake/exit")
    async def leave() -> dict[str, Any]:
        threading.Thread(target=lambda: (time.sleep(0.2), os._exit(3)), daemon=True).start()
        return {"exiting": 3}

    uvicorn.run(fake.app, host=options["host"], port=int(options["port"]), log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])

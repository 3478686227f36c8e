"""A child process that decodes big JSON request bodies, so the event loop keeps answering.

Parsing JSON holds the GIL for the whole ``orjson.loads`` call: about 0.7 s for a 48 MB body
on a busy 2-vCPU task, during which a worker *thread* would still block ``/health`` (the load
balancer's check times out at 2 s and fails a task after two misses). A separate process has
its own GIL. Bodies are sent to it over a pipe (length-prefixed) and the decoded request comes
back pickled (numpy arrays travel as raw buffers, protocol 5). One child, one body at a time:
its memory peak is that of one maximum-size request, whatever the concurrency.

If the child dies (killed for memory), the request gets a 503 and the next one starts a new
child. ``python -m service.decode_worker`` is the child's entry point; it imports only the
codec (numpy, orjson), not the web stack or ONNX Runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import struct
import sys
from typing import BinaryIO

from service.codec import InferRequest, decode_request
from service.errors import InferenceError, ModelNotReady

_REQUEST = struct.Struct("<Qq")  # body length, header length (-1: none)
_REPLY = struct.Struct("<BQ")  # 0 ok / 1 error, payload length


class DecodeWorker:
    """The parent's side: start the child on first use, send one body at a time."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._lock: asyncio.Lock | None = None

    async def decode(self, body: bytes, header_length: int | None) -> InferRequest:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            proc = await self._started()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(
                    _REQUEST.pack(len(body), -1 if header_length is None else header_length)
                )
                proc.stdin.write(body)
                await proc.stdin.drain()
                status, size = _REPLY.unpack(await proc.stdout.readexactly(_REPLY.size))
                payload = await proc.stdout.readexactly(size)
            except (BrokenPipeError, ConnectionResetError, asyncio.IncompleteReadError):
                await self.close()
                raise ModelNotReady(
                    "the request decoder process stopped (out of memory?); retry"
                ) from None
            except asyncio.CancelledError:
                await self.close()  # the pipe is mid-message: a fresh child for the next one
                raise
        result = pickle.loads(payload)
        if status:
            raise result
        return result

    async def _started(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "service.decode_worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        return self._proc

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The child's loop: read a body, decode it, write the pickled request or error."""
    while (head := _read_exactly(stdin, _REQUEST.size)) is not None:
        size, header_length = _REQUEST.unpack(head)
        body = _read_exactly(stdin, size)
        if body is None:
            return
        try:
            result: object = decode_request(body, None if header_length < 0 else header_length)
            status = 0
        except InferenceError as exc:
            result, status = exc, 1
        except Exception as exc:  # a codec bug: the parent answers 500, the child lives on
            result, status = RuntimeError(f"{type(exc).__name__}: {exc}"), 1
        del body
        payload = pickle.dumps(result, protocol=5)
        stdout.write(_REPLY.pack(status, len(payload)))
        stdout.write(payload)
        stdout.flush()


def main() -> None:
    # The protocol owns the real stdout; anything printed (warnings) goes to stderr instead.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, channel)


if __name__ == "__main__":
    main()

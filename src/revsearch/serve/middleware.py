"""What every response goes through: the upload limit and the security headers."""

from __future__ import annotations

from fastapi import Request

PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


class UploadTooLarge(Exception):
    pass


class LimitUploads:
    """ASGI middleware: refuse request bodies over `limit` bytes with 413, by the declared
    Content-Length before reading anything, and by counting what arrives otherwise."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(send)
        received = 0
        exceeded = started = False

        async def counting_receive():
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise UploadTooLarge
            return message

        async def guarded_send(message):
            # The app may turn the aborted read into its own error response: replace it.
            nonlocal started
            if message["type"] == "http.response.start":
                if started:
                    return
                started = True
                if exceeded:
                    await self._too_large(send)
                    return
            elif exceeded:
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except UploadTooLarge:
            if not started:
                started = True
                await self._too_large(send)

    async def _too_large(self, send) -> None:
        body = (b'{"detail":"upload too large: the limit is %d bytes"}' % self.limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def security_headers(request: Request, call_next):
    """HTTP middleware: no content sniffing, no referrer, and a strict policy on the page."""
    response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.url.path == "/":
        # File names and labels from the collection end up in the page: even if one
        # slipped through escaping, no inline or foreign script would run.
        response.headers["Content-Security-Policy"] = PAGE_POLICY
    return response

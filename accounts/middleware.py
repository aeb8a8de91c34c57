"""Holds the request being served for the audit trail (accounts.audit), so a service that changes
state records where the action came from (client address, user agent, the staff member acting) without
being handed the request. Placed after AuthenticationMiddleware; works under WSGI and ASGI."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from . import audit


class AuditContextMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        token = audit.bind_request(request)
        try:
            return self.get_response(request)
        finally:
            audit.unbind_request(token)

    async def _acall(self, request):
        token = audit.bind_request(request)
        try:
            return await self.get_response(request)
        finally:
            audit.unbind_request(token)

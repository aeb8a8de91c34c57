from dataclasses import asdict

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import broker_accounts_for

from .services import test_broker_connection


class ConnectionTestView(APIView):
    """Issue (or reuse) a token and read the balance of one of your broker accounts."""

    @extend_schema(request=None, responses={200: OpenApiResponse(description="cash, holdings or the broker error")})
    def post(self, request, pk: int):
        account = broker_accounts_for(request.user).filter(owner=request.user, pk=pk).first()
        if account is None:
            raise NotFound()
        result = test_broker_connection(account)
        body = asdict(result)
        body["holdings"] = [
            {**holding, "average_price": str(holding["average_price"]), "profit_rate": str(holding["profit_rate"])}
            for holding in body["holdings"]
        ]
        return Response(body, status=200 if result.ok else 502)

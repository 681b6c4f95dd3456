"""Fetch-back: re-read a prediction from the API, so what we store is what the API holds."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from receiver.errors import FetchBackFailed
from schemas.contract import PredictionResponse
from vlmhooks.errors import ContractViolation, MalformedJSON
from vlmhooks.ingest.prediction import parse_prediction_body

if TYPE_CHECKING:
    import httpx

__all__ = ["fetch_prediction", "prediction_url"]


def prediction_url(base_url: str, prediction_id: str) -> str:
    # quote(safe=""): an id is one path segment, whatever characters the sender put in it.
    return f"{base_url.rstrip('/')}/predictions/{quote(prediction_id, safe='')}"


async def fetch_prediction(
    http: httpx.AsyncClient, base_url: str, prediction_id: str
) -> PredictionResponse:
    """GET `{base_url}/predictions/{id}` and validate it; any failure is `FetchBackFailed`."""
    import httpx  # only fetch-back needs it; see receiver/app.py

    url = prediction_url(base_url, prediction_id)
    try:
        response = await http.get(url)
    except httpx.HTTPError as exc:
        raise FetchBackFailed(f"fetching prediction {prediction_id}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise FetchBackFailed(
            f"fetching prediction {prediction_id}: the API answered {response.status_code}"
        )
    try:
        fetched = parse_prediction_body(response.content)
    except (MalformedJSON, ContractViolation) as exc:
        raise FetchBackFailed(
            f"fetching prediction {prediction_id}: the API's answer is invalid: {exc.detail}"
        ) from exc
    if fetched.id != prediction_id:
        raise FetchBackFailed(
            f"fetching prediction {prediction_id}: the API answered with prediction {fetched.id}"
        )
    return fetched

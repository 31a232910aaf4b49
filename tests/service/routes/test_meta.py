"""``/health``, ``/info`` and ``/metrics`` in process."""

from __future__ import annotations

from models.similarity.methods import METHODS
from tests.service.routes.conftest import Client


def test_info_lists_the_tables_methods_and_the_linker(client: Client) -> None:
    info = client.get("/info").json()
    assert info["methods"] == {
        name: {"description": m.description, "similarity": m.similarity_rule, "alignment": m.alignment}
        for name, m in METHODS.items()
    }
    assert info["linker"]["index"]["manifest"]["counts"]["entities"] == 7
    assert info["limits"]["max_pairs"] == 4 and info["batching"]["packing"] is True


def test_the_linker_gets_every_core_and_the_encoder_workers_share_them(client: Client) -> None:
    from service.runtime import threads_per_worker

    info = client.get("/info").json()
    batching = info["batching"]
    assert info["linker"]["threads"] == threads_per_worker(1)
    assert batching["torch_threads"] == threads_per_worker(batching["encoder_workers"])


def test_health_and_metrics_count_what_was_served(client: Client) -> None:
    health, _, metrics = client.send(
        [
            ("GET", "/health", {}),
            ("POST", "/similarity", {"json": {"pairs": [{"a": "x", "b": "y"}]}}),
            ("GET", "/metrics", {}),
        ]
    )
    assert health.json() == {"status": "ok", "model": "all-MiniLM-L6-v2"}
    assert 'simlink_http_requests_total{route="/similarity",status="200"}' in metrics.text
    assert 'simlink_model_batch_items_count{model="encoder"}' in metrics.text

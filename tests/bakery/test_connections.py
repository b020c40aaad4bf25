"""`make demo` bounds its PostgreSQL connections before it starts anything: each web process gets as
many pooled connections as fit, and a WEB_WORKERS that cannot fit is refused with a clear message."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bakery import connections
from bakery.engines import free_port, port_is_free
from tests.processes import ROOT
from tests.servers import worker_environment

SERVER = {"max_connections": 100, "reserved": 3, "in_use": 1}
DEMO = {"web_threads": 24, "back_office_processes": 4, "provider_pool": 2}


@pytest.mark.parametrize("web_workers, web_pool", [(1, 24), (2, 24), (4, 18), (8, 8), (13, 4)])
def test_each_web_process_gets_what_fits_and_the_total_stays_under_the_limit(web_workers, web_pool):
    plan = connections.plan(web_workers=web_workers, **DEMO, **SERVER)
    assert plan.web_pool == web_pool
    assert plan.peak <= plan.allowed == 100 - 3 - 1 - connections.HEADROOM


def test_too_many_web_workers_are_refused_naming_what_fits():
    with pytest.raises(connections.NotEnoughConnections) as refused:
        connections.plan(web_workers=14, **DEMO, **SERVER)
    assert "WEB_WORKERS=14 needs 14 x (4 + 2) + 8 PostgreSQL connections" in str(refused.value)
    assert "Use WEB_WORKERS=13 or fewer" in str(refused.value)


def test_a_pool_size_that_does_not_fit_is_refused_too():
    with pytest.raises(connections.NotEnoughConnections, match="or a smaller DATABASE_POOL_SIZE"):
        connections.plan(web_workers=4, pool_size=30, **DEMO, **SERVER)


@pytest.mark.django_db
def test_make_demo_refuses_up_front_on_the_real_server():
    port = free_port()
    demo = subprocess.run([sys.executable, "-m", "bakery.demo", "--port", str(port), "--web-workers", "200"],
                          cwd=ROOT, env=worker_environment(), capture_output=True, text=True, timeout=60)
    assert demo.returncode == 2
    assert "Not starting: WEB_WORKERS=200 needs 200 x (4 + 2)" in demo.stderr
    assert "raise PostgreSQL's max_connections" in demo.stderr
    assert port_is_free(port)  # nothing was started

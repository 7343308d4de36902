"""``lingualift ecda`` watched: decisions in TensorBoard and on a Prometheus endpoint while it runs."""

from __future__ import annotations

import pytest

from lingualift.config import load_config
from lingualift.jobs.ecda import EcdaConfig, run_ecda
from tests.continual.helpers import log_rows, write_log
from tests.jobs.test_ecda import NEW, OLD, args, draw, fresh_store, world  # noqa: F401 (fixture)
from tests.jobs.test_monitor_watch import followed, free_port, scrape_until
from tests.test_tracking import read_scalars

SW = (("lang", "sw"),)


def test_a_followed_loop_shows_its_promotion_in_prometheus_and_tensorboard(world, tmp_path):  # noqa: F811
    pytest.importorskip("prometheus_client")
    pytest.importorskip("tensorboard")
    store = fresh_store(world, tmp_path)
    logs = tmp_path / "logs"
    write_log(logs / "seg-0001.jsonl", log_rows(draw(OLD, 60, 2) + draw(NEW, 90, 3)))
    port = free_port()
    overrides = args(
        world, tmp_path, input=str(logs), follow="true", poll_seconds=0.05, metrics_port=port,
        report_to="tensorboard", settle_rows=0,  # test v2's windows at once (no settling)
    )[1:]  # fmt: skip
    config = load_config(EcdaConfig, overrides=overrides)

    def run(stop):
        run_ecda(config, progress=False, stop=stop)

    with followed(run, port, join_timeout=120) as (url, failed):
        got = scrape_until(
            url, lambda s: s.get(("lingualift_ecda_promotions_total", SW)) == 1, failed, 300
        )
        assert got[("lingualift_current_version", SW)] == 2
        assert got[("lingualift_ecda_updates_total", SW)] == 1
        assert got[("lingualift_ecda_kept_total", SW)] == 0
        assert got[("lingualift_monitor_alarms_total", SW)] >= 1
        gate = store.history("sw")[-1]["metrics"]
        assert got[("lingualift_ecda_gate_gain", SW)] == pytest.approx(gate["new"]["gain"])
        assert got[("lingualift_ecda_gate_regret", SW)] == pytest.approx(gate["old"]["regret"])
        # Every window of the log is tested (after the promotion against v2) while it follows.
        got = scrape_until(
            url, lambda s: s.get(("lingualift_monitor_windows_total", SW)) == 5, failed
        )

    scalars = read_scalars(tmp_path / "out" / "logs" / "lingualift")
    [(step, promoted)] = scalars["ecda/sw/promoted"]
    assert promoted == 1 and step == 3  # decided on the third window, the one that drifted
    assert scalars["ecda/sw/planned"] == [(3, 1.0)]
    assert scalars["ecda/sw/current_version"] == [(3, 2.0)]
    assert scalars["ecda/sw/parent_version"] == [(3, 1.0)]
    assert scalars["ecda/sw/gain_new"][0][1] == pytest.approx(gate["new"]["gain"])
    assert scalars["ecda/sw/nll_old_candidate"][0][1] == pytest.approx(gate["old"]["candidate"])
    assert [s for s, _ in scalars["monitor/sw/drift"]] == [1, 2, 3, 4, 5]
    # The update's own training curves went to its own folder (train.report_to=auto).
    curves = tmp_path / "out/updates/sw-w00002/train/logs/lingualift"
    assert [s for s, _ in read_scalars(curves)["train/loss"]] == [1, 2, 3]

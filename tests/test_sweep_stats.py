"""The sweep's corrected verdicts, held-out confirmation and strategy math, on simulated rows (no server)."""

import dataclasses

import numpy as np
import pytest
from test_sweep_outputs import N, make_row

from rys import paths as layer_paths
from rys.sweep.confirm import confirmations, confirmed_best, split
from rys.sweep.rank import family_verdicts, verdicts
from rys.sweep.results import Row


def _sim_row(path_key, scores, probe="math", baseline=False):
    items = [{"id": f"q{k}", "category": "c", "score": float(s), "correct": True} for k, s in enumerate(scores)]
    return Row(config="baseline" if baseline else path_key, path=path_key, i=0 if baseline else None, j=0 if baseline else None,
               times=1 if baseline else 2, interleaved=False, n_layers=N, probe=probe, probe_sha256="p" * 64,
               score=float(np.mean(scores)), ci=[0, 1], coverage=None, n_items=len(scores), delta={"delta": 0.0},
               result={"items": items}, timings={}, provenance={"model_sha256": "m"})


def _null_family(n_configs, n_items, planted=(), seed=11):
    """n_configs configs whose items differ from the baseline's by pure noise (true delta 0), and, for the
    indices in `planted`, by noise plus a real gain."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.8, n_items)
    rows = {}
    for k in range(n_configs):
        shift = 0.25 if k in planted else 0.0
        rows[f"c{k}"] = _sim_row(f"c{k}", base + shift + rng.normal(0, 0.15, n_items))
    return _sim_row("base", base, baseline=True), rows


def test_null_sweep_uncorrected_marks_about_5_percent_corrected_none():
    base, rows = _null_family(300, 24)
    judged = family_verdicts({k: (base, r) for k, r in rows.items()})
    raw = sum(v.p < 0.05 for v in judged.values())
    assert 6 <= raw <= 27  # about 5% of 300 = 15 (binomial sd 3.8)
    assert sum(v.significant for v in judged.values()) == 0
    for v in judged.values():  # the interval and the decision agree on every config
        assert (v.ci_low is not None and v.ci_low > 0) or (v.ci_high is not None and v.ci_high < 0) or not v.significant
        assert v.significant == ((v.ci_low is not None and v.ci_low > 0) or (v.ci_high is not None and v.ci_high < 0))


def test_corrected_rule_still_finds_planted_gains():
    planted = {3, 77, 150}
    base, rows = _null_family(300, 24, planted=planted)
    judged = family_verdicts({k: (base, r) for k, r in rows.items()})
    marked = {k for k, v in judged.items() if v.significant}
    assert {f"c{k}" for k in planted} <= marked and len(marked - {f"c{k}" for k in planted}) <= 1
    level = next(iter(judged.values())).level
    assert level == pytest.approx(len(marked) * 0.05 / 300)  # BH's false-coverage level: R alpha / m
    for k in marked:
        assert judged[k].ci_low > 0


def test_verdicts_restrict_the_baseline_to_a_rungs_items():
    # a halving row on the first 10 of 20 items is paired with the baseline's first 10
    base = make_row(0, 0, "math", 0.0, times=1, n=20)
    short = make_row(1, 3, "math", 0.3, n=10)
    judged = verdicts([base, short])["math"][short.path]
    assert judged.n_items == 10 and judged.delta == pytest.approx(0.3)
    assert judged.p == pytest.approx(2 / 2 ** 10)  # exact: only the two all-same-sign patterns


def test_confirmations_and_confirmed_best_by_hand():
    rows = [make_row(0, 0, "math", 0.0, times=1), make_row(1, 3, "math", 0.3), make_row(2, 4, "math", 0.2),
            make_row(3, 5, "math", 0.15),
            make_row(0, 0, "math", 0.0, times=1, stage="confirm", prefix="h"),
            make_row(1, 3, "math", -0.2, stage="confirm", prefix="h"),  # significantly worse on new items
            make_row(2, 4, "math", 0.05, sig=False, stage="confirm", prefix="h"),
            make_row(3, 5, "math", 0.12, stage="confirm", prefix="h")]
    confs = {c.config: c for c in confirmations(rows)}
    assert set(confs) == {"(1,3)", "(2,4)", "(3,5)"}
    # 3 held-out tests: exact p 2/1024 for the two consistent ones, BH-adjusted by 3/2
    assert confs["(3,5)"].held_out.p_adj == pytest.approx(1.5 * 2 / 1024)
    assert confs["(3,5)"].confirmed and not confs["(2,4)"].confirmed and not confs["(1,3)"].confirmed
    assert confs["(1,3)"].search_delta == pytest.approx(0.3) and confs["(1,3)"].held_out.delta == pytest.approx(-0.2)
    assert confirmed_best(rows) == layer_paths.format_path(layer_paths.duplicate(3, 5, N))
    # search rows are untouched by the held-out ones: the search ranking still puts (1,3) first
    assert verdicts(rows)["math"][rows[1].path].delta == pytest.approx(0.3)


def test_holdout_split_is_fixed_by_item_ids():
    from rys.probes import load_probe

    probe = load_probe("reasoning")
    search, held = split(probe, 0.25)
    assert {i.id for i in search.items}.isdisjoint({i.id for i in held.items})
    assert len(search.items) + len(held.items) == len(probe.items)
    assert 5 <= len(held.items) <= 20  # about a quarter of 50
    _, again_held = split(dataclasses.replace(probe, items=tuple(reversed(probe.items))), 0.25)
    assert {i.id for i in again_held.items} == {i.id for i in held.items}  # order does not matter
    assert search.sha256 != held.sha256 != probe.sha256


def test_fresh_items_never_repeat_the_search_prompts():
    from rys.probes import load_probe
    from rys.sweep.confirm import plan

    probe = load_probe("math-logprob")
    p = plan([probe], limit=8, confirm_items=40, fraction=0.25)
    held = p.held_out["math-logprob"]
    assert len(p.search[0].items) == 8 and len(held.items) == 40
    assert not {i.prompt for i in held.items} & {i.prompt for i in probe.items}
    assert len({i.prompt for i in held.items}) == 40 and all(i.id.startswith("heldout-") for i in held.items)
    assert plan([probe], 8, 40, 0.25).held_out["math-logprob"].sha256 == held.sha256  # fixed: resumable


def test_halving_rungs_and_survivors():
    from rys.sweep.strategy.halving import rungs, survivors

    assert rungs(60, 3, 6) == [7, 20, 60]  # 60/3 = 20, 20/3 = 6.7 -> 7, 7/3 < 6: stop
    assert rungs(60, 4, 4) == [4, 15, 60]
    assert rungs(5, 3, 6) == [5]
    assert survivors(195, 3, 5) == 65 and survivors(10, 3, 5) == 5 and survivors(3, 3, 5) == 3


def test_guided_features_and_two_block_paths():
    from rys.sweep.space import block_config
    from rys.sweep.strategy.guided import features, two_block

    f = features(layer_paths.duplicate(2, 4, 6), 6)  # 0..3,2..5: layers 2 and 3 run twice
    assert f == [1, 1, 2, 2, 1, 1, 2, 2, 3, 1]
    both = two_block(block_config(1, 2, 6), block_config(3, 5, 6), 6)
    assert list(both.path) == [0, 1, 1, 2, 3, 4, 3, 4, 5]
    assert features(both.path, 6)[6:] == [3, 1, 4, 2]
    assert two_block(block_config(1, 4, 6), block_config(3, 5, 6), 6) is None  # overlapping blocks


def test_guided_explores_the_config_farthest_from_what_was_measured():
    from rys.sweep.space import Config, block_config
    from rys.sweep.strategy.guided import farthest

    space = [block_config(i, i + 2, 6) for i in range(5)] + [Config(tuple(range(6)) + (5, 5, 5))]
    # measured: blocks at 0 and 1; the far end of the space is the path with layer 5 run four times
    assert farthest(space[2:], space[:2], space, 6).path == (0, 1, 2, 3, 4, 5, 5, 5, 5)
    assert farthest(space[2:5], space[:2], space, 6).i == 4  # among blocks: the one farthest from 0 and 1


def test_guided_budget_is_a_share_of_the_grids_compute():
    from rys.sweep.space import block_config
    from rys.sweep.strategy.guided import fitting, spendable

    # 3 configs costing 10, 20, 30 layers per item and a 24-layer baseline: the grid is 84;
    # 0.5 of it is 42, of which the baseline takes 24: 18 left for configs
    assert spendable(0.5, [10, 20, 30], 24) == pytest.approx(18)
    a, b, c, d = (block_config(i, i + 1, 24) for i in range(4))
    cost = {a.key: 10, b.key: 20, c.key: 5, d.key: 4}
    # in pool order, skipping over what does not fit (b: 10 + 20 > 18), up to `most`
    assert fitting([a, b, c, d], cost, 18, most=4) == [a, c]
    assert fitting([a, b, c, d], cost, 19, most=4) == [a, c, d]
    assert fitting([a, b, c, d], cost, 19, most=1) == [a]
    assert fitting([b], cost, 19, most=4) == []

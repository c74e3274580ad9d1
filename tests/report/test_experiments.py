import pytest

from use_repro.config import PROFILES, ConfigError, load_config, validate_config
from use_repro.report.experiments import experiments, table_runs


def cfg_with(exps, **report):
    return validate_config({"profile": "x", "experiments": exps, "report": report})


def test_defaults_and_dependency_order():
    cfg = cfg_with({"g": {"stage": "gan", "target": "shifted", "init": "r", "steps": 3, "test": True},
                    "r": {"stage": "regression", "target": "shifted", "steps": 5, "test": True}},
                   proposed="g", fig9={"two_stage": "g", "finetune": "g"},
                   spectrograms={"regression": "r", "gan": "g", "early": "r", "shifted": "r"})
    exps = experiments(cfg)
    assert list(exps) == ["r", "g"]          # r trains first: g starts from it
    assert exps["g"].depends == ("r",) and exps["r"].filter == "none" and exps["r"].gpus == 0
    assert exps["g"].display == "g"
    in_profile_order = {n: exps[n] for n in cfg["experiments"]}
    assert table_runs(in_profile_order, [], "table1") == ["g", "r"]   # config order
    assert table_runs(in_profile_order, ["r"], "table6") == ["r"]     # report.table1's
    assert table_runs(in_profile_order, [], "table4") == [] and table_runs(in_profile_order, [], "datasize") == []


@pytest.mark.parametrize("exps, match", [
    ({"g": {"stage": "gan", "target": "shifted", "steps": 1}}, "experiments.g.init: stage gan needs"),
    ({"g": {"stage": "gan", "target": "shifted", "steps": 1, "init": "nope"}}, "no experiment named 'nope'"),
    ({"a": {"stage": "gan", "target": "shifted", "steps": 1, "init": "b"},
      "b": {"stage": "gan", "target": "shifted", "steps": 1, "init": "a"}}, "is a gan run"),
    ({"r": {"stage": "regression", "target": "shifted", "steps": 1, "filter": "vq999"}}, "no VQScore threshold named 'vq999'"),
    ({"r": {"stage": "regression", "target": "early33ms", "steps": 1}}, "needs a 33 ms window"),
])
def test_bad_entries_name_the_key(exps, match):
    with pytest.raises(ConfigError, match=match):
        experiments(cfg_with(exps))


def test_schema_rejects_unknown_entry_key_and_bad_names():
    with pytest.raises(ConfigError, match="experiments.r"):
        validate_config({"experiments": {"r": {"stage": "regression", "target": "shifted", "steps": 1, "lr": 1}}})
    with pytest.raises(ConfigError):
        validate_config({"experiments": {"noisy": {"stage": "regression", "target": "shifted", "steps": 1}}})
    with pytest.raises(ConfigError):
        validate_config({"experiments": {"r": {"stage": "regression", "target": "reverberant", "steps": 1}}})


def test_report_must_name_existing_experiments():
    with pytest.raises(ConfigError, match="report.fig3a: no experiment named 'zzz'"):
        experiments(cfg_with({"r": {"stage": "regression", "target": "shifted", "steps": 1}}, fig3a=["zzz"]))


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_define_the_papers_experiments(profile):
    cfg = load_config(profile)
    exps = experiments(cfg)
    # Table 1: both targets with and without GAN correction, all scored on the test set
    table1 = ("early", "shifted", "shifted_gan") + (("early_gan",) if profile != "tiny" else ())
    for name in table1:
        assert exps[name].test, name
    assert exps["early"].target == "early" and exps["shifted"].target == "shifted"
    assert exps["shifted_gan"].init == "shifted"
    if profile != "tiny":
        assert exps["early_gan"].init == "early"
    # Figure 9: two-stage vs conventional fine-tune from the same regression model
    ft = exps[cfg["report"]["fig9"]["finetune"]]
    assert ft.stage == "finetune" and ft.init == exps[cfg["report"]["fig9"]["two_stage"]].init
    # Figure 3(a): thresholds x shifted target; 3(b): the unshifted target and the 50/0 ms ends
    assert [exps[n].filter for n in cfg["report"]["fig3a"]][:2] == ["vq050", "vq065"]
    assert {exps[n].target for n in cfg["report"]["fig3a"]} == {"shifted"}
    targets = [exps[n].target for n in cfg["report"]["fig3b"]]
    assert {"anechoic", "early", "shifted"} <= set(targets)
    assert exps[cfg["report"]["proposed"]].unseen
    if profile != "tiny":
        assert len(cfg["report"]["fig3a"]) == 3 and {"early25ms", "early10ms"} <= set(targets)
    if profile == "urgent2025":
        assert all(e.gpus >= 1 for e in exps.values())


def test_an_experiment_may_carry_its_own_seed():
    exps = experiments(cfg_with({"r": {"stage": "regression", "target": "shifted", "steps": 1},
                                 "r1": {"stage": "regression", "target": "shifted", "steps": 1, "seed": 1}},
                                proposed="r", fig3a=["r", "r1"], fig3b=["r", "r1"],
                                fig9={"two_stage": "r", "finetune": "r"},
                                spectrograms={"regression": "r", "gan": "r", "early": "r", "shifted": "r"}))
    assert exps["r"].seed is None and exps["r1"].seed == 1
    with pytest.raises(ConfigError, match="seed"):
        validate_config({"experiments": {"r": {"stage": "regression", "target": "shifted", "steps": 1,
                                               "seed": -1}}})


def test_small_repeats_its_main_run_with_a_second_seed():
    cfg = load_config("small")
    exps = experiments(cfg)
    twin = [e for e in exps.values() if e.seed is not None]
    assert [e.name for e in twin] == ["shifted_seed1"]
    main = exps["shifted"]
    assert (twin[0].target, twin[0].filter, twin[0].steps, twin[0].stage) == \
        (main.target, main.filter, main.steps, main.stage) and twin[0].seed != cfg["seed"]
    assert "shifted_seed1" in cfg["report"]["fig3b"]

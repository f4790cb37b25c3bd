"""Property-based fuzzing of every stage's parameters: any value gives a result or an
InputError naming the parameter, never another exception."""
from __future__ import annotations

import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protlab
from protlab.core.errors import InputError

ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.sampled_from(["toy", "auto", "scan", "kmeans", "cpu", "tpu", "1", "None", "(", "[x"]),
    st.lists(st.one_of(st.integers(-3, 300), st.floats(-2, 2), st.text(max_size=3)), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(-2, 2), max_size=2),
)


@pytest.mark.parametrize("stage", protlab.STAGES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_validation_returns_every_parameter_or_an_input_error(stage, data):
    spec = getattr(protlab, stage).STAGE
    names = data.draw(st.lists(st.sampled_from([p.name for p in spec.params] + ["not_a_parameter"]),
                               max_size=4, unique=True))
    params = {name: data.draw(ANY) for name in names}
    try:
        checked = spec.validate(params)
    except InputError as exc:
        assert any(f"{name}=" in str(exc) or f"'{name}'" in str(exc) for name in params), str(exc)
        return
    assert set(checked) == set(spec.by_name) and "not_a_parameter" not in params
    assert spec.validate(checked) == checked  # what validation returns is valid as it is


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("fuzz")
    protlab.curate.run(run_dir, n_families=3, members_per_family=6, split_method="kmer", split_identity=0.9)
    protlab.embed.run(run_dir, kmer_dim=8, umap_max_points=10)
    protlab.cluster.run(run_dir, method="kmeans")
    return run_dir


SMALL_INT = st.one_of(st.integers(-3, 40), ANY)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.fixed_dictionaries({}, optional={
    "method": st.sampled_from(["kmeans", "pca_kmeans", "dbscan", 3]), "n_clusters": SMALL_INT, "k": SMALL_INT,
    "seed": SMALL_INT, "entropy_weight": ANY, "graph_features": ANY, "neighbors": ANY}))
def test_cluster_runs_or_refuses(small_run, tmp_path_factory, params):
    run_dir = tmp_path_factory.mktemp("c")
    shutil.copytree(small_run, run_dir, dirs_exist_ok=True)
    params.setdefault("method", "kmeans")  # the fast methods: SCAN's own inputs are validated the same way
    try:
        result = protlab.cluster.run(run_dir, **params)
    except InputError:
        return
    assert len(result.labels) == 18 and result.labels.max() < result.info["n_clusters"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.fixed_dictionaries({}, optional={"baselines": ANY, "seed": SMALL_INT}))
def test_evaluate_runs_or_refuses(small_run, tmp_path_factory, params):
    run_dir = tmp_path_factory.mktemp("e")
    shutil.copytree(small_run, run_dir, dirs_exist_ok=True)
    try:
        result = protlab.evaluate.run(run_dir, **params)
    except InputError:
        return
    assert 0 <= result.metrics["nmi"] <= 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from([p.name for p in protlab.pretrain.STAGE.params]), ANY, max_size=4))
def test_pretrain_settings_are_refused_before_any_work(tmp_path_factory, params):
    """Without proteins the run must stop before training; only InputError may come out."""
    run_dir = tmp_path_factory.mktemp("p")
    with pytest.raises(InputError):
        protlab.pretrain.run(run_dir, **params)
    assert not any(run_dir.iterdir())

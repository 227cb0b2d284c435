"""azml_nb.plots: assertions on the data each view draws (Agg backend, no display)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import azml_nb as az  # noqa: E402
from azml_nb import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    return az.datasets.book_reviews().head(12).reset_index(drop=True)


def _mismatch_cells(ax) -> set[tuple[int, int]]:
    cells = set()
    for patch in ax.patches:
        if patch.get_gid() == plots.MISMATCH_GID:
            x, y = patch.get_xy()
            cells.add((int(round(y + 0.5)), int(round(x + 0.5))))
    return cells


# --- heatmap -----------------------------------------------------------------------------

def test_heatmap_image_equals_counts_of_feature_hashing(reviews):
    hashed = az.feature_hashing(reviews, ["Col2"], bitsize=4)
    ax = plots.hashed_heatmap(hashed)
    counts = hashed[[f"Col2_HashingFeature.{i}" for i in range(16)]].to_numpy()
    np.testing.assert_array_equal(ax.images[0].get_array(), counts)
    assert ax.get_xlabel() and ax.get_ylabel() and "12 rows x 16 buckets" in ax.get_title()


def test_heatmap_labels_rows_with_their_text_cut_when_long():
    texts = ["This is a good day", "x " * 40]
    counts = np.vstack([az.hash_text(t, bitsize=3) for t in texts])
    ax = plots.hashed_heatmap(counts, labels=texts, max_label_chars=20)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "This is a good day"
    assert len(labels[1]) == 20 and labels[1].endswith("\u2026")
    np.testing.assert_array_equal(ax.images[0].get_array()[0], [1, 1, 2, 2, 0, 2, 0, 1])


def test_heatmap_uses_the_frames_text_column_as_labels(reviews):
    hashed = az.feature_hashing(reviews[["Col2"]].head(3), ["Col2"], bitsize=3)
    ax = plots.hashed_heatmap(hashed, max_label_chars=500)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(reviews["Col2"].head(3))


def test_heatmap_draws_on_the_given_axes_and_refuses_frames_without_features():
    fig, ax = plt.subplots()
    assert plots.hashed_heatmap([[0, 1]], ax=ax) is ax
    with pytest.raises(ValueError, match="HashingFeature"):
        plots.hashed_heatmap(pd.DataFrame({"Col2": ["a"]}))


# --- difference view ---------------------------------------------------------------------

def test_diff_boxes_exactly_the_differing_cells(reviews):
    local = az.feature_hashing(reviews, ["Col2"], bitsize=3)
    served = local.copy()
    columns = [c for c in served.columns if "_HashingFeature." in c]
    served.loc[2, columns[5]] += 1
    served.loc[7, columns[0]] -= 1
    served.loc[7, columns[1]] += 2
    fig = plots.hashed_diff(local, served)
    assert _mismatch_cells(fig.axes[2]) == {(2, 5), (7, 0), (7, 1)}
    diff = fig.axes[2].images[0].get_array()
    assert set(zip(*np.nonzero(np.asarray(diff)))) == {(2, 5), (7, 0), (7, 1)}
    assert "3 of 96 cells differ" in fig.axes[2].get_title()


def test_diff_of_equal_outputs_boxes_nothing(reviews):
    local = az.feature_hashing(reviews, ["Col2"], bitsize=3)
    fig = plots.hashed_diff(local, local.copy())
    assert _mismatch_cells(fig.axes[2]) == set()


def test_diff_of_two_bitsizes_folds_the_wider_one_and_agrees(reviews):
    narrow = az.feature_hashing(reviews, ["Col2"], bitsize=3)
    wide = az.feature_hashing(reviews, ["Col2"], bitsize=6)
    fig = plots.hashed_diff(narrow, wide, names=("bitsize 3", "bitsize 6"))
    assert _mismatch_cells(fig.axes[2]) == set()
    assert fig.axes[1].images[0].get_array().shape == (12, 64)
    broken = wide.copy()
    broken.loc[4, "Col2_HashingFeature.13"] += 1         # 13 & 7 == 5
    assert _mismatch_cells(plots.hashed_diff(narrow, broken).axes[2]) == {(4, 5)}


def test_diff_refuses_different_row_counts():
    with pytest.raises(ValueError, match="same rows"):
        plots.hashed_diff([[1, 2]], [[1, 2], [3, 4]])


# --- collisions --------------------------------------------------------------------------

def test_feature_hashes_mask_to_the_modules_buckets():
    """The full hashes behind the collision curve land where hash_text counts them."""
    texts = list(az.datasets.synthetic_reviews(20, seed=3)["Col2"]) + ["12 12 007 x", "This is a good day"]
    for ngrams in (1, 2, 3):
        for text in texts:
            features = plots._feature_hashes([text], ngrams)
            for bits in (3, 10):
                buckets = np.unique(features & np.uint64(2 ** bits - 1))
                counted = np.nonzero(az.hash_text(text, bitsize=bits, ngrams=ngrams))[0]
                assert set(buckets) == set(counted), (text, ngrams, bits)


def test_collision_curve_is_monotone_non_increasing_in_bitsize():
    texts = az.datasets.synthetic_reviews(400, seed=1)["Col2"]
    ax = plots.collision_curve(texts, bitsizes=range(1, 21), ngrams=2)
    x, y = ax.lines[0].get_data()
    assert list(x) == list(range(1, 21))
    assert np.all(np.diff(y) <= 0)
    assert y[0] == 100 and y[-1] < y[0]
    assert "%" in ax.get_ylabel() and "bitsize" in ax.get_xlabel()


def test_collision_rates_count_features_sharing_a_bucket():
    # "a" and "b" and their bigram: three distinct features; at bitsize 1 at least two share
    rates = plots.collision_rates(["a b", "b a b"], bitsizes=[1, 31], ngrams=2)
    assert rates.loc[1, "features"] == 4                 # a, b, "a b", "b a"
    assert rates.loc[1, "colliding"] >= 2
    assert rates.loc[31, "colliding"] == 0
    with pytest.raises(ValueError, match="1..31"):
        plots.collision_rates(["a"], bitsizes=[32])


# --- usage dashboard ---------------------------------------------------------------------

@pytest.fixture
def records() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 300
    start = pd.Timestamp("2026-11-26 13:00", tz="UTC")
    return pd.DataFrame({
        "timestamp": start + pd.to_timedelta(np.sort(rng.uniform(0, 120, n)), unit="s"),
        "api": "azureml-demo", "operation": "rrs-execute", "product": "starter",
        "subscription": "demo",
        "status_code": 200,
        "outcome": rng.choice(["success", "blocked", "failed"], n, p=[0.7, 0.2, 0.1]),
        "request_bytes": 100, "response_bytes": 400,
        "api_time_ms": rng.gamma(2, 10, n), "service_time_ms": rng.gamma(2, 5, n),
    })


def test_usage_dashboard_bars_count_every_call_by_outcome(records):
    fig = plots.usage_dashboard(records, freq="10s")
    calls, latency = fig.axes[:2]
    for outcome in ("success", "blocked", "failed"):
        heights = [p.get_height() for p in calls.patches if p.get_gid() == outcome]
        assert len(heights) == 12                              # 120 s in 10 s buckets
        assert sum(heights) == (records["outcome"] == outcome).sum()
    timeline = plots.usage_timeline(records, freq="10s")
    np.testing.assert_allclose(latency.lines[0].get_ydata(), timeline["api_time_ms"])
    first = records[records["timestamp"] < records["timestamp"].min().floor("10s") + pd.Timedelta("10s")]
    assert timeline["api_time_ms"].iloc[0] == pytest.approx(first["api_time_ms"].mean())
    assert "calls" in calls.get_ylabel() and "ms" in latency.get_ylabel()


def test_usage_dashboard_of_no_calls_says_so():
    empty = pd.DataFrame(columns=["timestamp", "outcome", "api_time_ms", "service_time_ms"])
    fig = plots.usage_dashboard(empty)
    assert any("no calls" in t.get_text() for t in fig.axes[0].texts)


def test_usage_timeline_names_missing_columns():
    with pytest.raises(ValueError, match="outcome"):
        plots.usage_timeline(pd.DataFrame({"timestamp": [], "api_time_ms": [], "service_time_ms": []}))


@pytest.mark.integration
def test_pictures_demo_writes_a_png_of_each_view(tmp_path):
    from azml_nb.demo import pictures_demo

    paths = pictures_demo(tmp_path)            # host and gateway without storage, then stopped
    assert sorted(p.name for p in paths) == sorted([
        "hashed_heatmap.png", "hashed_diff_local_vs_service.png", "hashed_diff_bitsizes.png",
        "collision_curve.png", "usage_dashboard.png"])
    for path in paths:
        image = plt.imread(path)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500
        assert image[..., :3].std() > 0.05                    # not a blank canvas

"""report.html: every section, figures embedded, nothing fetched, renders in headless Chromium,
and stays small on a large pool."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import cli, shortest, write_json

import iclselect
from iclselect.report import SECTIONS
from iclselect.report.page import MAP_POINTS

_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//|url\(|@import""", re.I)


@pytest.fixture(scope="module")
def report(tmp_path_factory, demo_rows):
    """A real wICI run on 13 short rows, one of them a near copy of another (a trailing space
    on the response), so the near-duplicate rule has something to suppress."""
    tmp = tmp_path_factory.mktemp("report")
    rows = shortest(demo_rows, 12)
    data = write_json(tmp / "pool.json", [*rows, {**rows[3], "output": rows[3]["output"] + " "}])
    out = tmp / "out"
    result = cli(
        "run",
        str(data),
        "-o",
        str(out),
        "--count",
        "12",
        "-q",
        "-s",
        "n_probes=2",
        "-s",
        "n_neighbours=3",
    )
    assert result.exit_code == 0, result.output
    return out / "report.html"


def test_report_has_every_section_and_embedded_figures_only(report):
    page = report.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in page
    # score histogram, components, map, coverage bars
    assert page.count('src="data:image/png;base64,') >= 4
    assert not _EXTERNAL.search(page), _EXTERNAL.search(page)
    assert "<script" not in page
    assert "probe_ici" in page  # the per-probe influence behind a wICI score
    duplicates = page.split("<h2>Near-duplicates</h2>")[1]
    assert "rows scored high enough to keep but were too similar" in duplicates
    assert re.search(r'<td class="num">(3|12)</td>', duplicates)
    assert "A high wici score means the sample, shown to the model as a one-shot example" in page


def test_row_references_are_read_from_the_schema(report):
    """The probes' table comes from probe_rows being marked in scores.parquet's schema (with
    the columns that go with it), not from the column's name."""
    import pyarrow.parquet as pq

    from iclselect.run.outputs import row_columns

    schema = pq.read_schema(report.parent / "scores.parquet")
    assert row_columns(schema) == {"probe_rows": ["probe_ici", "probe_weight"]}
    page = report.read_text(encoding="utf-8")
    assert "<th>row</th><th>instruction</th><th>probe_ici</th><th>probe_weight</th>" in page


def _outside_samples(page: str) -> str:
    """The page's own words: sample texts (in <pre>) are data and may say anything."""
    return re.sub(r"<pre>.*?</pre>", "", page, flags=re.S)


def test_report_reads_typed_columns_in_words(tmp_path, demo_rows):
    """A length run (no model) with exact duplicates and near ties at the cut: every table is
    an HTML table, no Python value shows as a repr, and the ties and duplicates are named."""
    rows = shortest(demo_rows, 8)
    tied = [{**r, "output": "x" * 400} for r in rows[:4]]  # four equal, top scores
    data = write_json(tmp_path / "pool.json", [*tied, *rows[4:], *rows[4:6]])
    out = tmp_path / "out"
    result = cli("run", str(data), "-m", "length", "--count", "2", "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    assert "near ties at the cut: 2 rows left out" in result.output
    page = (out / "report.html").read_text(encoding="utf-8")
    words = _outside_samples(page)
    assert not re.search(r"\b(None|True|False|nan)\b", words), re.search(
        r".{80}\b(None|True|False|nan)\b.{40}", words
    )
    assert "<pre>" not in words
    assert "Near ties at the cut:</b> 2 rows left out" in page
    assert "<th>reason</th><th>meaning</th>" in page and "<td>duplicate</td>" in page
    assert "exact duplicates</td><td>2 (only the first copy" in page
    assert "A high length score means a long response" in page


def test_report_command_rebuilds_it(report):
    before = report.read_text(encoding="utf-8")
    report.unlink()
    result = cli("report", str(report.parent))
    assert result.exit_code == 0, result.output
    assert report.read_text(encoding="utf-8") == before
    missing = cli("report", str(report.parent / "nope"))
    assert missing.exit_code == 2 and "not a run's --out" in missing.output


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="needs Debian's chromium (apt-get install chromium) to render the page",
)
def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,2000",
            f"--screenshot={shot}",
            "--enable-logging=stderr",
            "--v=0",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 50_000
    assert "CONSOLE" not in done.stderr, done.stderr
    assert "Failed to load resource" not in done.stderr


def test_large_pool_report_samples_the_map_and_stays_small(tmp_path, demo_rows):
    """100k rows (the real rows, renumbered). Embedding 100k rows takes minutes on a CPU, so
    the map is built from random unit vectors: the report's size depends on how many points it
    draws, not on where they are."""
    rows = [
        {**demo_rows[i % len(demo_rows)], "instruction": f"{demo_rows[i % 60]['instruction']} #{i}"}
        for i in range(100_000)
    ]
    scores = iclselect.score(rows, method="random", quiet=True)
    vectors = np.random.default_rng(0).normal(size=(len(rows), 32)).astype(np.float32)
    scores.scored.pool.full_vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    result = iclselect.select(scores, fraction=0.1).write(tmp_path / "big")
    report = result.out / "report.html"
    assert report.stat().st_size < 20e6
    page = report.read_text(encoding="utf-8")
    assert f"The map draws {MAP_POINTS:,} of 100,000 rows, sampled uniformly" in page


def test_report_refuses_an_input_changed_since_the_run(tmp_path, demo_rows):
    rows = shortest(demo_rows, 5)
    data = write_json(tmp_path / "pool.json", rows)
    out = tmp_path / "out"
    assert cli("run", str(data), "-m", "length", "-o", str(out), "-q").exit_code == 0
    assert cli("report", str(out)).exit_code == 0
    rows[2] = {**rows[2], "output": rows[2]["output"] + " (edited)"}
    write_json(data, rows)
    result = cli("report", str(out))
    assert result.exit_code == 2
    line = result.output.strip()
    assert len(line.splitlines()) == 1
    assert line.startswith(f"error: {data} has changed since the run in {out}: row 2 is not")
    assert line.endswith("; rerun iclselect run to score it as it is now")


def test_report_without_its_input_warns_and_says_so_on_the_page(tmp_path, demo_rows):
    data = write_json(tmp_path / "pool.json", shortest(demo_rows, 4))
    out = tmp_path / "out"
    assert cli("run", str(data), "-m", "length", "-o", str(out), "-q").exit_code == 0
    data.unlink()
    result = cli("report", str(out))
    assert result.exit_code == 0, result.output
    warning, wrote = result.output.strip().splitlines()
    assert warning.startswith(
        f"warning: {out / 'report.html'} shows no sample texts: the run's input cannot be read ("
    )
    assert str(data) in warning and wrote == f"wrote {out / 'report.html'}"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Sample texts are not shown: the run&#x27;s input cannot be read" in page


def test_report_rebuilds_a_compare(tmp_path, demo_rows):
    data = write_json(tmp_path / "pool.json", shortest(demo_rows, 4))
    out = tmp_path / "cmp"
    args = ["compare", str(data), "--methods", "length,random", "--count", "2", "-o", str(out)]
    assert cli(*args, "-q").exit_code == 0
    pages = {p: p.read_text(encoding="utf-8") for p in out.rglob("report.html")}
    assert len(pages) == 3
    for page in pages:
        page.unlink()
    result = cli("report", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"wrote {out / 'report.html'}"
    assert {p: p.read_text(encoding="utf-8") for p in out.rglob("report.html")} == pages


def test_report_names_the_dtype_used_and_no_near_duplicate_step_where_there_was_none(
    tmp_path, demo_rows
):
    import json

    data = write_json(tmp_path / "pool.json", shortest(demo_rows, 4))
    out = tmp_path / "out"
    assert cli("run", str(data), "-m", "ifd", "--count", "2", "-o", str(out), "-q").exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["dtype"] == "auto" and manifest["dtype"] in ("fp32", "bf16")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"dtype {manifest['dtype']} (--dtype auto)" in page
    assert "This method has no near-duplicate step: no row above it was left out." in page
    assert "were near-duplicates" not in page

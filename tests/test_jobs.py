"""Job files: YAML/JSON lists and CSV, every problem named with its line or field."""
from __future__ import annotations

import pytest

from placer.jobs import jobs_from_csv, jobs_from_list

from .conftest import shared_file


def test_csv_with_extra_columns() -> None:
    problems: list = []
    jobs = jobs_from_csv("job_id,submit_time,duration,gpus,user\na,0,10.5,8,alice\nb,5,3,16,bob\n", problems)
    assert problems == []
    assert [(j.job_id, j.gpus, j.submit_time, j.duration) for j in jobs] == [("a", 8, 0.0, 10.5), ("b", 16, 5.0, 3.0)]


@pytest.mark.parametrize("text,line,fragment", [
    ("job_id,submit_time,duration,gpus\na,0,1,zero\n", 2, "expected a whole number, got 'zero'"),
    ("job_id,submit_time,duration,gpus\na,0,1,8\nb,0,1\n", 3, "expected 4 columns, got 3"),
    ("job_id,submit_time,duration,gpus\na,0,1,0\n", 2, "must be a whole number >= 1"),
    ("job_id,submit_time,duration,gpus\na,x,1,8\n", 2, "expected a number, got 'x'"),
    ("job,gpus\na,8\n", 1, "CSV header lacks job_id"),
    ("", 1, "empty CSV"),
])
def test_csv_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    problems: list = []
    jobs_from_csv(text, problems)
    assert any(p.line == line and fragment in p.message for p in problems), problems


@pytest.mark.parametrize("item,fragment", [
    ({"job_id": "a"}, "a job needs gpus"),
    ({"gpus": 8}, "a job needs a job_id"),
    ({"job_id": "a", "gpus": 8, "gpu": 1}, "unknown job field 'gpu'"),
    ({"job_id": "a", "gpus": 12, "nodes": 5}, "do not split evenly over 5 nodes"),
    ({"job_id": "a", "gpus": 12, "nodes": 2, "gpus_per_node": 8}, "contradicts nodes=2 x gpus_per_node=8"),
    ({"job_id": "a", "gpus": 8, "exclude": "n[1-"}, "malformed hostlist"),
    ({"job_id": "a", "gpus": 8, "max_switches": 0}, "must be a whole number >= 1"),
    ({"job_id": "a", "gpus": True}, "must be a whole number"),
    ({"job_id": "a", "gpus": 8, "features": {"x": 1}}, "expected feature names"),
])
def test_list_errors(item: dict, fragment: str) -> None:
    problems: list = []
    assert jobs_from_list([item], problems) == []
    assert any(fragment in p.message for p in problems), problems


def test_nodes_times_gpus_per_node_and_duplicates() -> None:
    problems: list = []
    jobs = jobs_from_list({"jobs": [{"id": 1, "nodes": 4, "gpus_per_node": 8, "constraint": "h100&ib"},
                                    {"job_id": 1, "gpus": 2}]}, problems)
    assert jobs[0].gpus == 32 and jobs[0].gpus_per_node == 8 and jobs[0].features == ("h100", "ib")
    assert any("duplicate job_id" in p.message for p in problems)
    assert jobs_from_list("nope", problems) == [] and "a jobs file is a list" in problems[-1].message


def test_real_philly_trace_parses() -> None:
    path = shared_file("traces/philly-per-vc/0e4a51.csv")
    problems: list = []
    jobs = jobs_from_csv(path.read_text(), problems)
    assert problems == [] and len(jobs) > 100 and all(j.gpus >= 1 for j in jobs)

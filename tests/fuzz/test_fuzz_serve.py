"""The serve protocol and the serve config, fed broken requests: every line gets a JSON answer the hook can
read, and advice names only nodes that exist, are usable and belong to the job's partition."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given

from cli.serve_cmds import load_serve_config
from plugins.serve import _answer
from topology import PlacerError

from ..test_serve_unit import FABRIC, daemon
from .conftest import tried
from .mutate import mutated

REQUESTS = [
    json.dumps({"v": 1, "name": "a", "user": "u", "tres_per_job": "gres:gpu:2", "partition": "gpu"}),
    json.dumps({"v": 1, "name": "b", "tres_per_node": "gres:gpu:h100:4", "min_nodes": 2, "max_nodes": 2,
                "exc_nodes": "gpu[001-002]", "features": "a&b", "time_limit": 60, "sent": 0}),
    json.dumps({"v": 1, "name": "c", "tres_per_task": "gres:gpu:1", "num_tasks": 4, "req_nodes": "gpu003",
                "comment": "placer:off", "fail_open": 2}),
    json.dumps({"v": 1, "op": "state"}), json.dumps({"v": 1, "op": "decisions"}),
]
D, _ = daemon(max_state_age_s=1e9)


@given(mutated(REQUESTS))
def test_every_request_gets_an_answer(text: str) -> None:
    tried("serve request")
    answer, held = _answer(D, text.encode("utf-8", "surrogatepass") + b"\n")
    D.undo(held)  # keep the fabric free for the next input
    assert answer["action"] in ("none", "advise", "steer")
    assert "internal error" not in str(answer.get("reason", ""))
    json.dumps(answer, allow_nan=False)  # the hook reads it with cjson
    if answer["action"] == "advise" and "req_nodes" in answer:
        from topology.hostlists import expand
        names = expand(answer["req_nodes"])
        assert names and all(n in FABRIC.node_index for n in names)
        assert answer["min_nodes"] == len(names)


CONFIGS = ["mode: steer\nrefresh_s: 2\npartitions: [gpu, big]\nsocket: /run/placer/p.sock\nmetrics_port: 9464\n",
           "max_state_age_s: 30\nnode_poll_s: 0\ngpu_only: false\nopt_out: 'placer:off'\n"]


@given(mutated(CONFIGS))
def test_serve_config(text: str) -> None:
    tried("serve config")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "serve.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_serve_config(str(path))
        except PlacerError:
            pass

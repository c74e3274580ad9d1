"""`use-repro weights`: fetch against a local HTTP server (good file, wrong sha256, truncated
transfer and its resume, a server that ignores Range, server down), add, status."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from use_repro import weights as W
from use_repro.cli import main

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    """Serves `body` at any path. `truncate_at`: send the full Content-Length but only that many
    bytes, then close (a dropped connection). `ranges`: honour `Range: bytes=N-` with 206."""

    def __init__(self, body: bytes):
        self.body, self.truncate_at, self.ranges, self.seen = body, None, True, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output quiet
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.seen.append(rng)
                start = 0
                if rng and outer.ranges:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(outer.body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(outer.body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(outer.body) - 1}/{len(outer.body)}")
                else:
                    self.send_response(200)
                data = outer.body[start:]
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if outer.truncate_at is not None:
                    self.wfile.write(data[:outer.truncate_at])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/nisqa.tar"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server(PAYLOAD)
    yield s
    s.close()


@pytest.fixture
def pinned(monkeypatch):
    """The `nisqa` entry pinned to the test payload (same code path as the real one)."""
    w = dataclasses.replace(W.REGISTRY["nisqa"], sha256=SHA, size=len(PAYLOAD))
    monkeypatch.setitem(W.REGISTRY, "nisqa", w)
    return w


def _files(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())


def test_fetch_good_file(tmp_path, server, pinned):
    dst = W.fetch("nisqa", tmp_path, url=server.url, timeout=10)
    assert dst == tmp_path / "nisqa" / "nisqa.tar"
    assert dst.read_bytes() == PAYLOAD
    assert _files(tmp_path) == ["nisqa/nisqa.tar", "weights.json"]
    rec = json.loads((tmp_path / "weights.json").read_text())["nisqa"]
    assert rec["sha256"] == SHA and rec["pinned"] is True and server.url in rec["origin"]
    assert server.seen == [None]  # no Range on a fresh download


def test_fetch_wrong_sha256_installs_nothing(tmp_path, server, pinned):
    server.body = bytes(reversed(PAYLOAD))  # same size, other bytes
    with pytest.raises(W.WeightsError, match="sha256.*not the official"):
        W.fetch("nisqa", tmp_path, url=server.url, timeout=10)
    assert _files(tmp_path) == []  # neither the final name nor a .part


def test_truncated_transfer_keeps_part_and_resumes_with_range(tmp_path, server, pinned):
    server.truncate_at = 100_000
    with pytest.raises(W.WeightsError, match="resume"):
        W.fetch("nisqa", tmp_path, url=server.url, timeout=10)
    part = tmp_path / "nisqa" / "nisqa.tar.part"
    assert not (tmp_path / "nisqa" / "nisqa.tar").exists()
    assert part.read_bytes() == PAYLOAD[:100_000]
    # status reports the partial download, and the file as missing
    row = next(r for r in W.status(tmp_path) if r["name"] == "nisqa")
    assert row["state"] == "missing" and "100000 bytes" in row["partial_download"]
    server.truncate_at = None
    dst = W.fetch("nisqa", tmp_path, url=server.url, timeout=10)
    assert server.seen[-1] == "bytes=100000-"
    assert dst.read_bytes() == PAYLOAD and not part.exists()


def test_server_ignoring_range_restarts_from_zero(tmp_path, server, pinned):
    (tmp_path / "nisqa").mkdir()
    (tmp_path / "nisqa" / "nisqa.tar.part").write_bytes(b"x" * 5000)  # stale, wrong bytes
    server.ranges = False
    dst = W.fetch("nisqa", tmp_path, url=server.url, timeout=10)
    assert server.seen == ["bytes=5000-"] and dst.read_bytes() == PAYLOAD


def test_part_that_is_already_whole_is_checked_and_installed(tmp_path, server, pinned):
    (tmp_path / "nisqa").mkdir()
    (tmp_path / "nisqa" / "nisqa.tar.part").write_bytes(PAYLOAD)
    dst = W.fetch("nisqa", tmp_path, url=server.url, timeout=10)  # the server answers 416
    assert dst.read_bytes() == PAYLOAD


def test_server_down_says_offline_and_metric_stays_na(tmp_path, pinned, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/nisqa.tar"
    rc = main(["weights", "--weights-dir", str(tmp_path), "fetch", "nisqa", "--url", url, "--timeout", "5"])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot reach" in err and "offline" in err and "NISQA stays n/a" in err
    assert _files(tmp_path) == []
    from use_repro.metrics import registry

    assert not registry.resolve("NISQA", tmp_path).available


def test_add_checks_sha256(tmp_path, pinned):
    good, bad = tmp_path / "good.tar", tmp_path / "bad.tar"
    good.write_bytes(PAYLOAD)
    bad.write_bytes(PAYLOAD[:-1] + b"\x00")
    wd = tmp_path / "w"
    with pytest.raises(W.WeightsError, match=f"bad.tar: sha256 .* not the official nisqa file's {SHA}"):
        W.add("nisqa", bad, wd)
    assert not (wd / "nisqa" / "nisqa.tar").exists()
    with pytest.raises(W.WeightsError, match="no such file"):
        W.add("nisqa", tmp_path / "absent.tar", wd)
    assert W.add("nisqa", good, wd).read_bytes() == PAYLOAD
    assert _files(wd) == ["nisqa/nisqa.tar", "weights.json"]


def test_unpinned_file_needs_consent_and_is_recorded_not_pinned(tmp_path):
    src = tmp_path / "ck.pkl"
    src.write_bytes(PAYLOAD)
    wd = tmp_path / "w"
    assert W.REGISTRY["vqscore"].sha256 is None
    with pytest.raises(W.WeightsError, match="accept-unpinned"):
        W.add("vqscore", src, wd)
    dst = W.add("vqscore", src, wd, accept_unpinned=True)
    assert dst == wd / "vqscore" / "checkpoint-dnsmos_ovr_CC=0.835.pkl"
    rec = json.loads((wd / "weights.json").read_text())["vqscore"]
    assert rec == {**rec, "sha256": SHA, "pinned": False}
    row = next(r for r in W.status(wd) if r["name"] == "vqscore")
    assert row["state"] == "recorded, not pinned" and row["sha256"] == SHA
    dst.write_bytes(PAYLOAD[:10])  # replaced behind the manifest's back
    row = next(r for r in W.status(wd) if r["name"] == "vqscore")
    assert row["state"].startswith("present, not pinned and not recorded")



def test_the_authors_release_is_added_only_if_it_loads_strictly(tmp_path):
    import torch

    from use_repro.models.released import load_released, save_released
    from use_repro.models.usemamba import USEMamba, USEMambaConfig

    torch.manual_seed(0)
    model = USEMamba(USEMambaConfig(num_blocks=1, channels=4, d_state=4, expand=2, dense_depth=1))
    good = save_released(tmp_path / "model.safetensors", model, container="safetensors")
    wd = tmp_path / "w"
    with pytest.raises(W.WeightsError, match="accept-unpinned"):  # no digest could be verified
        W.add("reuse", good, wd)
    dst = W.add("reuse", good, wd, accept_unpinned=True)
    assert dst == wd / "reuse" / "model.safetensors"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), load_released(dst).state_dict().values()))
    assert json.loads((wd / "weights.json").read_text())["reuse"]["pinned"] is False
    # a safetensors file of other tensors, and a .pth (usable where it is), are not installed
    bad = tmp_path / "other.safetensors"
    state = dict(model.state_dict())
    state.pop(next(iter(state)))
    from use_repro.models.released import _write_safetensors
    _write_safetensors(bad, state)
    with pytest.raises(W.WeightsError, match="not the released USEMamba.*missing"):
        W.add("reuse", bad, tmp_path / "w2", accept_unpinned=True)
    pth = save_released(tmp_path / "g_00000100.pth", model)
    with pytest.raises(W.WeightsError, match="needs no installing"):
        W.add("reuse", pth, tmp_path / "w2", accept_unpinned=True)
    assert not (tmp_path / "w2" / "reuse" / "model.safetensors").exists()

def test_status_flags_a_file_that_is_not_the_official_one(tmp_path, pinned):
    (tmp_path / "nisqa").mkdir()
    (tmp_path / "nisqa" / "nisqa.tar").write_bytes(b"not nisqa")
    row = next(r for r in W.status(tmp_path) if r["name"] == "nisqa")
    assert row["state"] == "present but NOT the official file"
    assert row["sha256"] == hashlib.sha256(b"not nisqa").hexdigest()


def test_cli_add_of_the_real_nisqa_file_makes_it_the_paper_backend(tmp_path, capsys):
    from tests.shared import require_shared

    real = require_shared("weights/nisqa/nisqa.tar", "the real NISQA weights (nisqa.tar)")
    rc = main(["weights", "--weights-dir", str(tmp_path), "add", "nisqa", str(real)])
    assert rc == 0 and W.REGISTRY["nisqa"].sha256 in capsys.readouterr().out
    rc = main(["weights", "--weights-dir", str(tmp_path), "status", "--json"])
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["files"]}
    assert rc == 0 and rows["nisqa"]["state"] == "official"
    assert rows["nisqa"]["backend"]["paper_backend"] is True
    assert rows["utmos"]["state"] == "missing" and rows["utmos"]["backend"]["backend"] == "n/a"


def test_unexpected_range_discards_the_part(tmp_path, server, pinned):
    (tmp_path / "nisqa").mkdir()
    part = tmp_path / "nisqa" / "nisqa.tar.part"
    part.write_bytes(PAYLOAD[:1000])
    orig = server.httpd.RequestHandlerClass.do_GET

    def shifted(handler):  # a server that answers a Range request with another range
        if handler.headers.get("Range"):
            handler.headers.replace_header("Range", "bytes=2000-")
        orig(handler)
    server.httpd.RequestHandlerClass.do_GET = shifted
    with pytest.raises(W.WeightsError, match="range 'bytes 2000-"):
        W.fetch("nisqa", tmp_path, url=server.url, timeout=10)
    assert _files(tmp_path) == []


def test_status_covers_every_paper_backend(tmp_path):
    from use_repro.metrics import registry

    (tmp_path / "whisper-large-v3").mkdir()
    rows = {r["metric"]: r for r in W.status(tmp_path)}
    models = {"VQScore", W.REGISTRY["reuse"].metric}  # model files, not metric backends
    assert set(rows) == set(registry.PAPER_FILES) | models
    assert rows["CAcc"]["state"] == "present (folder)" and rows["SBERT"]["state"] == "missing"
    assert rows["SBERT"]["path"] == str(tmp_path / "mhubert-147")
    assert all("backend" in r for m, r in rows.items() if m not in models)


def test_status_names_each_backends_packages_and_dnsmos_from_speechmos(tmp_path, monkeypatch, capsys):
    from use_repro.metrics import registry

    real = W._installed
    rows = {r["metric"]: r for r in W.status(tmp_path)}
    assert set(W.PAPER_PACKAGES) == set(rows)  # every paper backend says what it runs on
    assert [p["name"] for p in rows["NISQA"]["packages"]] == ["nisqa", "librosa"]
    assert [p["name"] for p in rows["SpkSim"]["packages"]] == ["speechbrain"]
    assert rows["UTMOS"]["packages"] == []  # our own re-implementation: nothing else to install
    for r in rows.values():
        assert all(p["install"].startswith("pip install ") for p in r["packages"])
    # DNSMOS's ONNX ships in speechmos: with it installed the file is provided, not missing
    monkeypatch.setattr(W, "_installed", lambda d: "9.9" if d == "speechmos" else real(d))
    row = next(r for r in W.status(tmp_path) if r["metric"] == "DNSMOS")
    assert row["state"] == "provided by speechmos" and row["needs"].startswith("nothing")
    assert main(["weights", "--weights-dir", str(tmp_path), "status"]) == 0
    out = capsys.readouterr().out
    assert "state     : provided by speechmos" in out and "speechmos 9.9" in out
    assert "packages  : none beyond use-repro's own dependencies (torch)" in out  # UTMOS, VQScore, reuse
    monkeypatch.setattr(W, "_installed", lambda d: None if d == "speechmos" else real(d))
    row = next(r for r in W.status(tmp_path) if r["metric"] == "DNSMOS")
    assert row["state"] == "missing" and "pip install speechmos" in row["needs"]
    assert {"name": "speechmos", "version": None, "install": "pip install speechmos (ships the ONNX file)"} in row["packages"]
    # a file of one's own in weights_dir is what the row reports, speechmos or not
    (tmp_path / registry.PAPER_FILES["DNSMOS"]).parent.mkdir(parents=True)
    (tmp_path / registry.PAPER_FILES["DNSMOS"]).write_bytes(b"onnx")
    assert next(r for r in W.status(tmp_path) if r["metric"] == "DNSMOS")["state"] == "present"


# --- the authors' release: a fixed revision, the digest of what came, then `enhance --checkpoint reuse`

@pytest.fixture(scope="module")
def release_bytes(tmp_path_factory):
    """A small model saved as the release's safetensors file (it loads strictly as the release)."""
    import torch

    from use_repro.models.released import save_released
    from use_repro.models.usemamba import USEMamba, USEMambaConfig

    torch.manual_seed(0)
    model = USEMamba(USEMambaConfig(num_blocks=1, channels=4, d_state=4, expand=2, dense_depth=1))
    path = tmp_path_factory.mktemp("release") / "model.safetensors"
    return save_released(path, model, container="safetensors").read_bytes()


@pytest.fixture
def hub(release_bytes, monkeypatch):
    """The registry's `reuse` location served from 127.0.0.1 (the same code path as the hub's)."""
    s = _Server(release_bytes)
    monkeypatch.setitem(W.REGISTRY, "reuse", dataclasses.replace(W.REGISTRY["reuse"], url=s.url))
    yield s
    s.close()


def test_reuse_is_registered_at_a_fixed_revision_not_main():
    w = W.REGISTRY["reuse"]
    assert W.REUSE_REVISION == "761905064ea1ea882e015e20a64e2e9d28458890"
    assert w.url == f"https://huggingface.co/nvidia/RE-USE/resolve/{W.REUSE_REVISION}/model.safetensors"
    assert w.revision == W.REUSE_REVISION and w.sha256 is None  # no digest is published, none invented
    assert "reuse" in W.CHECKPOINTS


def test_fetch_reuse_records_the_digest_of_what_came_then_enhance_runs_it_by_name(
        tmp_path, hub, release_bytes, monkeypatch, capsys):
    import soundfile as sf

    monkeypatch.chdir(tmp_path)  # no options: ./weights, as a newcomer types it
    assert main(["weights", "fetch", "reuse"]) == 0  # no --accept-unpinned: the revision is fixed
    out = capsys.readouterr().out
    sha = hashlib.sha256(release_bytes).hexdigest()
    dst = tmp_path / "weights" / "reuse" / "model.safetensors"
    assert dst.read_bytes() == release_bytes and hub.seen == [None]
    assert f"(sha256 {sha})" in out and "publish no sha256" in out and f"revision {W.REUSE_REVISION}" in out
    assert "use-repro enhance --checkpoint reuse --in IN --out OUT" in out
    assert (dst.parent / "model.safetensors.sha256").read_text() == f"{sha}  model.safetensors\n"
    rec = json.loads((tmp_path / "weights" / "weights.json").read_text())["reuse"]
    assert rec == {**rec, "sha256": sha, "pinned": False, "revision": W.REUSE_REVISION}
    row = next(r for r in W.status("weights") if r["name"] == "reuse")
    assert row["state"] == f"fetched from revision {W.REUSE_REVISION}, sha256 recorded (none is published)"

    src = tmp_path / "in.wav"
    sf.write(src, (0.1 * np.random.default_rng(0).standard_normal(3200)).astype(np.float32), 16000)
    assert main(["enhance", "--checkpoint", "reuse", "--in", str(src), "--out", "out", "--device", "cpu"]) == 0
    header, *rows = [ln.split("\t") for ln in (tmp_path / "out" / "enhanced.tsv").read_text().splitlines()]
    assert len(rows) == 1 and dict(zip(header, rows[0]))["checkpoint"] == sha  # bound to the fetched file


def test_fetch_reuse_refuses_what_is_not_the_release_and_a_mirror_without_consent(tmp_path, hub):
    hub.body = b"<html>not a model</html>"
    with pytest.raises(W.WeightsError, match="not the released USEMamba"):
        W.fetch("reuse", tmp_path, timeout=10)
    assert _files(tmp_path) == []
    # a mirror is not the commit's file: it needs the same consent as any file without a digest
    with pytest.raises(W.WeightsError, match="accept-unpinned"):
        W.fetch("reuse", tmp_path, url=hub.url + "?mirror", timeout=10)


def test_enhance_by_name_without_the_file_says_how_to_fetch_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["enhance", "--checkpoint", "reuse", "--in", "x.wav", "--out", "out"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "weights/reuse/model.safetensors not found" in err
    assert "`use-repro weights fetch reuse`" in err
    # a file called `reuse` is a path like any other; other values pass through untouched
    (tmp_path / "reuse").write_bytes(b"x")
    assert W.resolve_checkpoint("reuse") == "reuse"
    assert W.resolve_checkpoint("runs/final.pt") == "runs/final.pt"


def test_ensure_installs_or_says_in_one_line_why_not_and_never_fails(tmp_path, server, pinned, capsys):
    ok, line = W.ensure("nisqa", tmp_path, url=server.url, timeout=10)
    assert ok and line.startswith("NISQA: installed the official weights") and SHA in line
    ok, line = W.ensure("nisqa", tmp_path, url="http://127.0.0.1:9/never", timeout=10)
    assert ok and line == f"NISQA: the official weights are in place ({tmp_path / 'nisqa' / 'nisqa.tar'})"
    assert server.seen == [None]  # in place: nothing fetched the second time
    (tmp_path / "nisqa" / "nisqa.tar").write_bytes(b"other")
    ok, line = W.ensure("nisqa", tmp_path)
    assert not ok and "is not the official file" in line and line.endswith("fetch nisqa")
    wd = tmp_path / "empty"
    rc = main(["weights", "--weights-dir", str(wd), "ensure", "nisqa", "--no-fetch", "--fix", "make weights"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and len(out) == 1 and server.seen == [None]
    assert out[0] == (f"use-repro weights: NISQA: the official weights are NOT installed ({wd / 'nisqa' / 'nisqa.tar'} "
                      f"is missing); NISQA is n/a in this run's tables. Add them: make weights")
    server.body = bytes(len(PAYLOAD))  # the pinned size, other bytes: refused, said, rc 0
    assert main(["weights", "--weights-dir", str(wd), "ensure", "nisqa", "--url", server.url]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "NOT installed" in out and "sha256" in out
    assert not (wd / "nisqa" / "nisqa.tar").exists()
    server.body = PAYLOAD
    assert main(["weights", "--weights-dir", str(wd), "ensure", "nisqa", "--url", server.url, "--quiet"]) == 0
    assert main(["weights", "--weights-dir", str(wd), "ensure", "nisqa", "--quiet"]) == 0
    assert capsys.readouterr().out == "" and (wd / "nisqa" / "nisqa.tar").read_bytes() == PAYLOAD
    with pytest.raises(W.WeightsError, match="pinned sha256"):
        W.ensure("vqscore", tmp_path)

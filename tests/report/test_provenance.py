"""report/provenance.py: the simulation's rejected rows are part of a run's record."""
import json

from use_repro.report.provenance import scan_backends, simulation_rejects, write_provenance


def _split(root, split, rendered, rejects, skipped=None):
    d = root / "simulation" / split
    d.mkdir(parents=True)
    (d / "meta.tsv").write_text("id\tfs\n" + "".join(f"fileid_{i}\t16000\n" for i in range(rendered)))
    (d / "rejects.tsv").write_text("id\treason\n" + "".join(f"{i}\t{r}\n" for i, r in rejects))
    if skipped is not None:
        (d / "params_rejects.tsv").write_text("id\treason\n" + "".join(f"{i}\t{r}\n" for i, r in skipped))


def test_rejects_per_split_in_json_and_markdown(tmp_path):
    res = tmp_path / "results" / "p"
    _split(res, "train", 9, [("fileid_10", "AudioError: /data/a.flac: contains NaN or infinite samples")],
           [("sp_7", "speech skipped: /data/b.flac: no such file")])
    _split(res, "test", 4, [])
    got = simulation_rejects([f"{res}/"])
    assert got["train"]["rendered"] == 9 and got["train"]["rejected"] == 1
    assert got["train"]["rejected_first"] == ["fileid_10: AudioError: /data/a.flac: contains NaN or infinite samples"]
    assert got["train"]["params_skipped"] == 1 and "/data/b.flac" in got["train"]["params_skipped_first"][0]
    assert got["test"]["rejected"] == 0 and got["test"]["rendered"] == 4 and got["test"]["params_skipped"] == 0
    out = tmp_path / "prov.md"
    data = write_provenance(out, "p", tmp_path, tmp_path / "no_metadata", (f"{res}/",))
    assert data["simulation_rejects"]["train"]["rejected"] == 1
    assert json.loads(out.with_suffix(".json").read_text())["simulation_rejects"]["test"]["rendered"] == 4
    md = out.read_text()
    assert "- train: 9 rows rendered, 1 rejected" in md and "/data/a.flac" in md and "/data/b.flac" in md
    assert "- test: 4 rows rendered, 0 rejected; 0 speech entries" in md


def test_no_simulation_no_rejects(tmp_path):
    out = tmp_path / "prov.md"
    data = write_provenance(out, "p", tmp_path, tmp_path / "none", (f"{tmp_path}/nothing/",))
    assert data["simulation_rejects"] == {} and "- no rejects.tsv found" in out.read_text()


def test_scan_backend_of_each_training_run(tmp_path):
    res = tmp_path / "results" / "p"
    (res / "shifted").mkdir(parents=True)
    (res / "shifted" / "scan_backend.json").write_text(json.dumps(
        {"stage": "regression", "device": "cuda:0", "backends": ["triton"], "labels": ["triton (triton 3.6.0)"]}))
    (res / "shifted_gan").mkdir()
    (res / "shifted_gan" / "scan_backend.json").write_text("{broken")
    assert scan_backends([f"{res}/"]) == {"shifted": {"stage": "regression", "device": "cuda:0",
                                                       "backends": ["triton"], "labels": ["triton (triton 3.6.0)"]}}
    out = tmp_path / "prov.md"
    data = write_provenance(out, "p", tmp_path, tmp_path / "none", (f"{res}/",))
    assert data["scan_backends"]["shifted"]["backends"] == ["triton"]
    assert "- shifted: triton (triton 3.6.0) on cuda:0 (regression)" in out.read_text()

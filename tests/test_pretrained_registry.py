"""The published-model registry, its manual (Google Drive) entries and `python -m vsr_jax.pretrained list`."""

import json
import os

import pytest

from vsr_jax import models
from vsr_jax.errors import UserError
from vsr_jax.pretrained import __main__ as cli
from vsr_jax.pretrained import download, registry

HOSTS = {
    "https://github.com/xinntao/Real-ESRGAN/releases/download/v": "Real-ESRGAN release",
    "https://drive.google.com/": "BasicSR, Google Drive (by hand)",
    "https://download.openmmlab.com/mmediting/restorers/": "MMagic",
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "weights"
    monkeypatch.setenv(download.ENV_VAR, str(d))
    return d


def test_entries_name_their_authors_files():
    for e in registry.ENTRIES.values():
        origin = next(v for k, v in HOSTS.items() if e.url.startswith(k))
        assert e.origin == origin, e.name
        assert e.manual == e.url.startswith("https://drive.google.com/"), e.name
        assert e.filename.endswith(".pth") and "/" not in e.filename, e.name
        assert e.licence == ("BSD-3-Clause" if "Real-ESRGAN (" in e.source else "Apache-2.0"), e.name
        assert e.score and e.task and e.source, e.name
        if e.runnable and e.arch != "realbasicvsr":  # (realbasicvsr: ported in parallel)
            assert e.arch in models.available(), e.name
        # BasicSR's and MMagic's names carry the sha256 prefix (checked on fetch); BasicSR's
        # reproduced MSRResNet runs and Real-ESRGAN's release files carry none
        hashed = not (e.name.startswith("MSRResNet_") or "Real-ESRGAN (" in e.source)
        assert (e.verified_by == "name") == hashed, e.name
    spynet = registry.get("spynet_sintel_final")
    assert not spynet.runnable and spynet.arch == "spynet" and spynet.task == "flow (for basicvsr training)"
    assert spynet.filename == "spynet_sintel_final-3d2a1287.pth"
    assert registry.get("ESRGAN_SRx4_DF2KOST_official").url == (
        "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth"
    )
    assert registry.get("realesr-general-x4v3").twin_filename == "realesr-general-wdn-x4v3.pth"
    with pytest.raises(UserError, match="no published model named 'nope'"):
        registry.get("nope")


COUNTED = ["RealESRGAN_x4plus", "RealESRGAN_x2plus", "EDSR_Lx4", "EDSR_Mx4", "MSRResNet_x4", "BasicVSR_REDS4"]


def test_list_counts_the_authors_parameters(cache, capsys, monkeypatch):
    # (counting traces each model: a few of each family keep this test at a few seconds)
    some = {n: registry.ENTRIES[n] for n in [*COUNTED, "basicvsr_reds4", "spynet_sintel_final"]}
    monkeypatch.setattr(registry, "ENTRIES", some)
    assert cli.main(["list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(some)
    # BasicSR's counts (checked against torch's in the ports' tests): RRDBNet(64, 23, 32) x4; the
    # x2 model's first conv takes the 12 pixel-unshuffled channels (+9 * 9 * 64 weights)
    assert rows["RealESRGAN_x4plus"]["params"] == 16_697_987
    assert rows["RealESRGAN_x2plus"]["params"] == 16_697_987 + 9 * 9 * 64
    assert rows["EDSR_Lx4"]["params"] == 43_089_923
    assert rows["MSRResNet_x4"]["params"] == rows["EDSR_Mx4"]["params"] == 1_517_571
    assert rows["BasicVSR_REDS4"]["params"] == rows["basicvsr_reds4"]["params"] == 6_291_311
    assert rows["spynet_sintel_final"]["params"] is None and rows["spynet_sintel_final"]["scale"] is None
    assert not rows["spynet_sintel_final"]["runnable"] and rows["MSRResNet_x4"]["runnable"]
    assert rows["EDSR_Mx4"]["cache_path"] == str(cache / "EDSR_Mx4_f64b16_DIV2K_official-0c287733.pth")
    assert rows["basicvsr_reds4"]["verified_by"] == "name" and rows["RealESRGAN_x4plus"]["verified_by"] == ""


def test_list_table_and_markdown_say_what_is_cached(cache, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_count_params", lambda arch, scale, kwargs: 1_000_000)
    cache.mkdir()
    (cache / "RealESRGAN_x2plus.pth").write_bytes(b"x")
    assert cli.main(["list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(registry.ENTRIES)
    assert [n for n, r in rows.items() if r["cached"]] == ["RealESRGAN_x2plus"]

    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "arch", "scale", "task"] and len(lines) == 2 + len(registry.ENTRIES)
    by_name = {line.split()[0]: line for line in lines[1:-1]}
    assert "  yes  " in by_name["RealESRGAN_x2plus"] and "  by hand  " in by_name["EDSR_Mx4"]
    assert "  -  " in by_name["RealESRGAN_x4plus"] and "~4.0 MB" in by_name["RealESRGAN_x4plus"]
    assert lines[-1].startswith(f"cache: {cache} ")

    assert cli.main(["list", "--markdown"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| name | architecture | scale |") and len(md) == 2 + len(registry.ENTRIES)
    assert (
        "| EDSR_Lx4 | `edsr` | ×4 | BI | BasicSR, Google Drive (by hand), Apache-2.0 | 30.55 / 27.00 / 29.28"
        in md[2 + list(registry.ENTRIES).index("EDSR_Lx4")]
    )


def test_a_drive_only_file_is_one_line_naming_the_page_and_the_path(cache):
    entry = registry.get("BasicVSR_REDS4")
    with pytest.raises(UserError) as e:
        registry.fetch(entry, progress=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("BasicVSR_REDS4 is published only on a web page")
    assert "https://drive.google.com/file/d/1wLWdz18lWf9Z7lomHPkdySZ-_GV2920p/view" in msg
    assert msg.endswith(f"download BasicVSR_REDS4-543c8261.pth and put it at {cache / entry.filename}")
    assert not cache.exists()  # nothing connected, nothing written
    # a file put there by hand is checked against the hash prefix in its name
    cache.mkdir()
    (cache / entry.filename).write_bytes(b"not the file")
    with pytest.raises(UserError, match="does not match .* a sha256 starting with 543c8261; delete it"):
        registry.fetch(entry, progress=False)


def test_a_drive_file_put_in_the_cache_is_used_without_network(cache):
    entry = registry.get("MSRResNet_x4")  # no hash in the name: the file's keys and shapes are checked on load
    with pytest.raises(UserError) as e:
        registry.fetch(entry, progress=False)
    assert "download 001_MSRResNet_x4_f64b16_DIV2K_1000k_B16G1_wandb/models/net_g_1000000.pth and put it at " in str(
        e.value
    )
    cache.mkdir()
    (cache / "MSRResNet_x4.pth").write_bytes(b"placed by hand")
    assert registry.fetch(entry, progress=False) == str(cache / "MSRResNet_x4.pth")
    assert registry.is_cached(entry)
    with pytest.raises(UserError, match="has no denoise twin"):
        registry.fetch(entry, twin=True)
    assert os.listdir(cache) == ["MSRResNet_x4.pth"]


def test_fetch_command_prints_the_cached_paths_and_one_line_per_failure(cache, capsys):
    cache.mkdir()
    (cache / "MSRResNet_x4.pth").write_bytes(b"placed by hand")
    assert cli.main(["fetch", "MSRResNet_x4"]) == 0
    assert capsys.readouterr().out == f"{cache / 'MSRResNet_x4.pth'}\n"
    assert cli.main(["fetch", "MSRResNet_x4", "EDSR_Lx4", "nope"]) == 1
    out, err = capsys.readouterr()
    assert out == f"{cache / 'MSRResNet_x4.pth'}\n"
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("python -m vsr_jax.pretrained: error: EDSR_Lx4 is published only")
    assert lines[1] == (
        "python -m vsr_jax.pretrained: error: no published model named 'nope'; "
        "`python -m vsr_jax.pretrained list` shows them"
    )

"""The published-model registry and `python -m vsr_jax.pretrained list`."""

import json

from vsr_jax import models
from vsr_jax.pretrained import __main__ as cli
from vsr_jax.pretrained import registry


def test_every_entry_builds_and_the_list_counts_the_authors_parameters(capsys):
    for e in registry.ENTRIES.values():
        assert e.arch in models.available(), e.name
        assert e.url.startswith("https://github.com/xinntao/Real-ESRGAN/releases/download/") and e.filename.endswith(
            ".pth"
        )
    assert cli.main(["list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(registry.ENTRIES)
    # RRDBNet(64 feat, 23 blocks, 32 grow) has 16,697,987 parameters in BasicSR at x4; the x2
    # model's first conv takes the 12 pixel-unshuffled channels (+9 * 9 * 64 weights)
    assert rows["RealESRGAN_x4plus"]["params"] == 16_697_987
    assert rows["RealESRGAN_x2plus"]["params"] == 16_697_987 + 9 * 9 * 64
    assert cli.main(["list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| name | architecture |") and len(table) == 2 + len(registry.ENTRIES)

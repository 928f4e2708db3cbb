"""vsr-upscale jobs end to end (in process): frames, timestamps and audio kept, the
streamed recurrent run equal to a one-shot call, resume after an interruption equal to
an uninterrupted run, colour/rotation/10-bit carried over, batch mode."""

import json
import os
import time
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
import pytest

from tests import upscale_helpers as uh
from tests.test_upscale_engine import window_mix
from vsr_jax import video_io
from vsr_jax.errors import UserError
from vsr_jax.evaluate.runs import load_run
from vsr_jax.upscale import job


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for kind in ("srcnn", "recurrent_gan", "convlstm_bi"):
        uh.write_checkpoint(root / kind, kind)
        config, model, params, _ = load_run(str(root / kind), None)
        out[kind] = job.Model(model, params, int(config.data.num_frames), kind)
    out["sliding"] = job.Model(*window_mix(), 5, "sliding")  # EDVR's structure: each frame from its 5-frame window
    return out


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory):
    """30 frames 24×32, irregular timestamps (1/90000), a stereo AAC track."""
    path = tmp_path_factory.mktemp("video") / "vfr.mp4"
    pts = np.cumsum([0] + [3000 if i % 3 else 7000 for i in range(29)])
    uh.write_video(path, uh.moving_frames(30, 24, 32), pts=pts, audio=True)
    return path


def quiet(**kw):
    return job.Options(progress=False, **kw)


def png_frames(folder):
    """The frames of an output folder (its `.vsr-upscale` marker aside), and their names."""
    files = video_io.image_files(str(folder))
    assert sorted(os.listdir(folder)) == [".vsr-upscale"] + [os.path.basename(f) for f in files]
    return np.stack([video_io.read_image(f) for f in files]), [os.path.basename(f) for f in files]


def one_shot(m: job.Model, frames):
    x = jnp.asarray(frames, jnp.float32)[None] / 255.0
    y = np.clip(np.asarray(m.model.apply({"params": m.params}, x))[0], 0, 1)
    return np.round(y * 255).astype(np.uint8)


def psnr(a, b):
    return 10 * np.log10(255.0**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_video_keeps_frame_count_timestamps_and_audio(runs, vfr_video, tmp_path, ext):
    out = tmp_path / f"out{ext}"
    lossless = dict(crf=0, pix_fmt="yuv444p") if ext == ".mp4" else {}  # x264 lossless: the model's frames
    report = job.run(runs["srcnn"], str(vfr_video), str(out), quiet(segment_frames=8, **lossless), log=lambda m: None)
    assert report.frames == 30 and out.exists()
    assert not [p for p in os.listdir(tmp_path) if p != out.name]  # no work folder, no temporary file
    lr, lr_times = uh.read_video(vfr_video)
    sr, sr_times = uh.read_video(out)
    assert sr.shape == (30, 48, 64, 3)
    assert len(set(np.diff([float(t) for t in lr_times]).round(4))) == 2  # the input really is VFR
    a_in, a_out = uh.audio_packets(vfr_video), uh.audio_packets(out)
    assert len(a_in) > 50 and [b for _, b in a_out] == [b for _, b in a_in]  # copied, not re-encoded
    offset = a_out[0][0] - a_in[0][0]  # Matroska shifts every stream alike, past the AAC priming
    assert all(abs(float(o - i - offset)) <= 0.001 for (o, _), (i, _) in zip(a_out, a_in, strict=True))  # ms in mkv
    if ext == ".mp4":
        assert offset == 0 and sr_times == lr_times  # exact, variable gaps included
    else:  # Matroska stores milliseconds
        assert max(abs(float(a - offset - b)) for a, b in zip(sr_times, lr_times, strict=True)) <= 0.001
    if lossless:  # only the YUV rounding of the model's frames is left
        assert psnr(sr, one_shot(runs["srcnn"], lr)) > 45


def test_streamed_recurrent_run_equals_one_shot_call(runs, vfr_video, tmp_path):
    out = tmp_path / "frames"
    job.run(runs["recurrent_gan"], str(vfr_video), str(out), quiet(chunk=4, segment_frames=8), log=lambda m: None)
    sr, names = png_frames(out)
    assert names[0] == "frame_000001.png" and len(names) == 30
    lr, _ = uh.read_video(vfr_video)
    want = one_shot(runs["recurrent_gan"], lr)
    assert np.abs(sr.astype(int) - want.astype(int)).max() <= 1 and (sr != want).mean() < 1e-3


class Interrupt:
    """Makes the decoder raise KeyboardInterrupt (as Ctrl-C) at its `after`-th frame, once,
    when the job writing `output` has finished at least one segment."""

    def __init__(self, monkeypatch, after, output):
        real = video_io.decode
        progress = output.parent / f".{output.name}.vsr-upscale" / "progress.json"

        def decode(info, start=0):
            for n, item in enumerate(real(info, start)):
                if n == after and not self.fired:
                    deadline = time.time() + 120
                    while json.loads(progress.read_text())["segments"] < 1 and time.time() < deadline:
                        time.sleep(0.05)
                    self.fired = True
                    raise KeyboardInterrupt
                yield item

        self.fired = False
        monkeypatch.setattr(video_io, "decode", decode)


@pytest.mark.parametrize(
    ("kind", "ext"), [("recurrent_gan", ".mp4"), ("convlstm_bi", ""), ("srcnn", ".mkv"), ("sliding", "")]
)
def test_resume_after_interruption_gives_the_uninterrupted_output(runs, vfr_video, tmp_path, monkeypatch, kind, ext):
    # lossless: x264's bytes can differ between two runs of the same frames on a loaded machine
    # (seen 2 in 14, one thread or many), so the frames are compared, not the encoder's choices
    options = quiet(chunk=4, overlap=2, segment_frames=8, **(dict(crf=0, pix_fmt="yuv444p") if ext else {}))
    whole = tmp_path / f"whole{ext}"
    job.run(runs[kind], str(vfr_video), str(whole), options, log=lambda m: None)

    out = tmp_path / f"out{ext}"
    interrupt = Interrupt(monkeypatch, after=21, output=out)
    with pytest.raises(KeyboardInterrupt):
        job.run(runs[kind], str(vfr_video), str(out), options, log=lambda m: None)
    assert interrupt.fired and not out.exists()  # nothing at the output path
    work = tmp_path / f".{out.name}.vsr-upscale"
    assert (work / "progress.json").exists() and not list(work.glob("*.part"))
    logs = []
    report = job.run(runs[kind], str(vfr_video), str(out), options, log=logs.append)
    assert report.resumed_from in (8, 16) and any("Resuming" in m for m in logs), logs
    assert not work.exists()
    if ext:
        (a, ta), (b, tb) = uh.read_video(whole), uh.read_video(out)
        assert ta == tb and uh.audio_packets(whole) == uh.audio_packets(out)
    else:
        (a, _), (b, _) = png_frames(whole), png_frames(out)
    np.testing.assert_array_equal(a, b)
    if kind == "sliding":  # and both are the model on the whole video at once
        want = one_shot(runs[kind], uh.read_video(vfr_video)[0])
        assert np.abs(a.astype(int) - want.astype(int)).max() <= 1 and (a != want).mean() < 1e-3


def test_other_settings_start_over(runs, vfr_video, tmp_path, monkeypatch):
    out = tmp_path / "out.mp4"
    Interrupt(monkeypatch, after=12, output=out)
    with pytest.raises(KeyboardInterrupt):
        job.run(runs["srcnn"], str(vfr_video), str(out), quiet(segment_frames=8), log=lambda m: None)
    logs = []
    report = job.run(runs["srcnn"], str(vfr_video), str(out), quiet(segment_frames=8, crf=30), log=logs.append)
    assert report.resumed_from == 0 and any("discarding" in m for m in logs)


def test_ten_bit_colour_tags_and_rotation_are_kept(runs, tmp_path):
    import av

    src = tmp_path / "in10.mkv"
    frames = uh.moving_frames(6, 16, 24).astype(np.uint16) * 257
    uh.write_video(
        src, frames, pix_fmt="yuv444p10le", rotation=90, rate=30, time_base=Fraction(1, 30), bt709=True,
        options={"qp": "0"},
    )  # fmt: skip
    info = video_io.probe(src)
    assert (info.bit_depth, info.rotation, info.colorspace, info.color_primaries) == (10, 90, 1, 1)
    decoded = next(video_io.decode(info))[1]
    assert decoded.dtype == np.uint16 and np.abs(decoded.astype(int) - frames[0]).mean() < 257  # read with BT.709
    out = tmp_path / "out.mp4"
    job.run(runs["srcnn"], str(src), str(out), quiet(), log=lambda m: None)
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        assert frame.format.name == "yuv444p10le" and frame.rotation == 90
        assert (frame.colorspace, frame.color_primaries, frame.color_trc, frame.color_range) == (1, 1, 1, 1)
        assert (frame.width, frame.height) == (48, 32)


def test_subtitles_and_metadata_are_copied_and_what_cannot_go_is_said(runs, tmp_path):
    import av

    src = tmp_path / "subs.mp4"
    uh.write_video(src, uh.moving_frames(20, 16, 16), audio=True, subtitles="mov_text", title="Holiday 1998")

    def cues(path):  # the mp4 muxer writes empty mov_text samples into the gaps: compare the cues
        return [(t, b) for t, b in uh.audio_packets(path, "subtitle") if len(b) > 2]

    subs = cues(src)
    assert [b[2:] for _, b in subs] == [b"Hello", b"World"]
    out, logs = tmp_path / "out.mp4", []
    job.run(runs["srcnn"], str(src), str(out), quiet(), log=logs.append)
    assert cues(out) == subs and uh.audio_packets(out) == uh.audio_packets(src)
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "Holiday 1998"
        assert [s.type for s in c.streams] == ["video", "audio", "subtitle"]
        assert c.streams.audio[0].language == "eng" or c.streams.audio[0].metadata.get("language") == "eng"
    assert not logs
    out = tmp_path / "out.mkv"  # Matroska cannot hold mov_text: dropped, and the log says so
    job.run(runs["srcnn"], str(src), str(out), quiet(), log=logs.append)
    assert any("subtitle stream" in m and "dropped" in m for m in logs), logs
    assert len(uh.audio_packets(out)) == len(uh.audio_packets(src))


def test_interrupted_while_joining_resumes_without_recomputing(runs, vfr_video, tmp_path, monkeypatch):
    out = tmp_path / "out.mp4"
    real = video_io.remux

    def remux(*args, **kwargs):
        real(*args, **kwargs)  # the temporary file is written, then the user presses Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(video_io, "remux", remux)
    with pytest.raises(KeyboardInterrupt):
        job.run(runs["recurrent_gan"], str(vfr_video), str(out), quiet(chunk=4, segment_frames=8), log=lambda m: None)
    assert os.listdir(tmp_path) == [f".{out.name}.vsr-upscale"]  # no output, no temporary file
    progress = json.loads((tmp_path / f".{out.name}.vsr-upscale" / "progress.json").read_text())
    assert progress == {"segments": 4, "frames": 30, "complete": True}
    monkeypatch.setattr(video_io, "remux", real)
    report = job.run(runs["recurrent_gan"], str(vfr_video), str(out), quiet(chunk=4, segment_frames=8), log=print)
    assert report.frames == 30 and report.model_s == 0 and uh.read_video(out)[0].shape == (30, 48, 64, 3)


def test_audio_the_container_cannot_hold_is_re_encoded(runs, vfr_video, tmp_path):
    import av

    out, logs = tmp_path / "out.webm", []
    job.run(runs["srcnn"], str(vfr_video), str(out), quiet(), log=logs.append)
    assert any("re-encoded to libopus" in m for m in logs), logs
    with av.open(str(out)) as c:
        assert [(s.type, s.codec_context.name) for s in c.streams] == [("video", "vp9"), ("audio", "opus")]
        audio = list(c.decode(audio=0))
    with av.open(str(vfr_video)) as c:
        length = float(c.streams.audio[0].duration * c.streams.audio[0].time_base)
    heard = float(audio[-1].pts * audio[-1].time_base) + audio[-1].samples / audio[-1].sample_rate
    assert abs(heard - length) < 0.05 and float(audio[0].pts * audio[0].time_base) < 0.01


# -- out of device memory -------------------------------------------------------------------


def test_out_of_memory_settles_on_a_tile_and_resume_keeps_it(runs, vfr_video, tmp_path, monkeypatch):
    # 24×32 frames, --tile_pad=4: whole frames and tile 16 (a 24×24 window) run out; tile 8 fits
    options = quiet(chunk=4, segment_frames=8, tile_pad=4, min_tile=4)
    want = tmp_path / "want"
    job.run(runs["srcnn"], str(vfr_video), str(want), quiet(chunk=4, segment_frames=8, tile=8, tile_pad=4))
    calls = uh.failing_upscalers(monkeypatch, 16 * 16)
    out, logs = tmp_path / "out", []
    job.run(runs["srcnn"], str(vfr_video), str(out), options, log=logs.append)
    assert logs == ["out of device memory at whole frames (24×32 LR px); using --tile=8 (--tile_pad=4)"]
    assert calls[0][:3] == [(24, 32), (24, 24), (16, 16)]
    np.testing.assert_array_equal(png_frames(out)[0], png_frames(want)[0])

    # interrupted after a segment: the tile is recorded, and the resumed run starts with it
    again = tmp_path / "again"
    interrupt = Interrupt(monkeypatch, after=21, output=again)
    with pytest.raises(KeyboardInterrupt):
        job.run(runs["srcnn"], str(vfr_video), str(again), options, log=lambda m: None)
    assert interrupt.fired and not again.exists()
    progress = json.loads((tmp_path / ".again.vsr-upscale" / "progress.json").read_text())
    assert progress["segments"] >= 1 and progress["tile"] == 8
    logs = []
    report = job.run(runs["srcnn"], str(vfr_video), str(again), options, log=logs.append)
    assert report.resumed_from in (8, 16) and not any("out of device memory" in m for m in logs), logs
    assert set(calls[-1]) == {(16, 16)}  # never whole frames again
    np.testing.assert_array_equal(png_frames(again)[0], png_frames(want)[0])


def test_out_of_memory_even_at_the_smallest_tile_leaves_no_output(runs, vfr_video, tmp_path, monkeypatch):
    uh.failing_upscalers(monkeypatch, 0)
    out = tmp_path / "out.mp4"
    with pytest.raises(UserError, match="out of device memory even at"):
        job.run(runs["srcnn"], str(vfr_video), str(out), quiet(), log=lambda m: None)
    assert not out.exists() and not list(tmp_path.glob(".out.mp4.vsr-upscale/*.part"))


def test_devices_flag_is_checked_and_described(runs):
    assert job.describe_devices(runs["srcnn"], quiet()) == "frames mode on 1 cpu device"
    assert job.describe_devices(runs["recurrent_gan"], quiet(devices=1, tile=8)) == "recurrent mode on 1 cpu device"
    with pytest.raises(UserError, match="--devices=9: this host has 1 local devices"):
        job.local_devices(9)

"""vsr_jax against the authors' PyTorch code, same architecture and weights, same machine, same run.

BasicSR 1.4.2's `MSRResNet` (×4, 64 features, 16 blocks) and `BasicVSR` (64 features, 30
blocks, SpyNet) in eager PyTorch (`torch.set_num_threads(--threads)`, `no_grad` for
inference) against our ports (`msrresnet`, `basicvsr`) under the XLA settings a user gets
by default (whatever XLA_FLAGS the caller's shell has, plus what importing vsr_jax adds).
Both sides get the SAME random weights (torch's initialisation, converted to ours by
`vsr_jax.pretrained.convert`) and the same inputs; every inference case first checks that
the outputs agree (max |diff|) and every training case that the first step's loss does.

Torch cannot be imported in the project's venv, so this file is also the PyTorch side:
`published_speed.py --serve`, run by the authors' venv's python (`--torch_python`,
default /tmp/tvenv/bin/python; tests/data/published/README.md says how to make it), is a
server that builds, runs and times the torch models on request (JSON lines on its stdin;
arrays through .npy files). The driver (this script in our venv) alternates the two sides
rep by rep (ABBA order), each side timing its own calls only, and reports min and median
of `--reps` reps per side after one warm-up call each (compilation for us).

Cases (the peer's sizes, issues 19 and 20):
* MSRResNet ×4 inference on one 64×64 and one 180×320 LR frame (ms/frame);
* MSRResNet training, batch 16 of 32×32 LR (L1, Adam; frames/s);
* BasicVSR inference on 15 frames of 64×64 and of 180×320 (ms/frame);
* BasicVSR training on 1×7×64×64 (Charbonnier, Adam; frames/s);
* EDVR_M (one window per frame, as BasicSR's video test) on 7 frames of 64×64 and 5 of
  180×320, IconVSR (REDS options) and BasicVSR++ (MMagic's, mmcv's DCN computed by
  torchvision) on 15 frames of 64×64 and 7 of 180×320 (ms/frame);
* BasicVSR++'s deformable layer alone (modulated DCN 3×3, 128→64, 16 offset groups; offsets
  and mask as parameters), forward and backward at 1×64×64 and 1×180×320 (ms/call);
* the layer both are made of, alone: one 3×3 convolution 64→64 with bias (torch's
  `nn.Conv2d` against `layers.Conv`), forward at 1×64×64 and 1×180×320, and backward
  (gradients of sum(conv(x)·g) for the input, kernel and bias, as inside a training step)
  at 1×64×64 (BasicVSR's propagation, one clip), 16×32×32 (MSRResNet's batch) and
  1×180×320 (ms/call). This says how far the frameworks' convolution kernels alone are
  apart, which bounds what the models' ratios can be.
Training here is forward + loss + backward + one Adam step on every parameter (SpyNet
included), no EMA, no learning-rate schedule on either side; ours is the library's train
step (`vsr_jax.train_step.make_train_step`, as `vsr_jax.main` runs it).

Writes experiments/results/published_speed.json and .md (date, CPU, thread counts,
versions, XLA_FLAGS) and prints the table; `--readme=README.md` also rewrites its
`<!-- published_speed -->` block.

    python experiments/published_speed.py [--reps=3] [--cases=msrresnet_infer_64,...] [--quick]

`--quick`: narrow models at small sizes, one rep (a smoke test, 1–3 minutes). Each call's
process CPU seconds are recorded beside its wall time (the table's CPU column), a hint when
the machine was busy; the wall-time ratio on a quiet machine is the measurement. Where the
torch venv is missing the script says so in one line and exits 1.
"""

from __future__ import annotations

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REFSTUB = os.path.join(ROOT, "tests", "data", "published", "refstub")
# the authors' venv: torch + torchvision + basicsr (tests/data/published/README.md); a venv
# whose torch cannot load torchvision runs with the stand-in `REFSTUB`, without the DCN rows
TORCH_PYTHON = "/tmp/tvenv/bin/python"

# name: (architecture, task, LR shape (N, T, h, w) with T=None for single images, quick shape)
CASES = {
    "msrresnet_infer_64": ("msrresnet", "inference", (1, None, 64, 64), (1, None, 24, 24)),
    "msrresnet_infer_180x320": ("msrresnet", "inference", (1, None, 180, 320), (1, None, 24, 40)),
    "msrresnet_train_b16": ("msrresnet", "train", (16, None, 32, 32), (2, None, 16, 16)),
    "basicvsr_infer_15x64": ("basicvsr", "inference", (1, 15, 64, 64), (1, 3, 40, 40)),
    "basicvsr_infer_15x180x320": ("basicvsr", "inference", (1, 15, 180, 320), (1, 3, 40, 56)),
    "basicvsr_train_7x64": ("basicvsr", "train", (1, 7, 64, 64), (1, 3, 40, 40)),
    # the deformable models (issue 20): EDVR_M restores each frame from its 5-frame window
    # (BasicSR's test loop: one window per call, reflection_circle at the clip ends)
    "edvr_infer_7x64": ("edvr", "inference", (1, 7, 64, 64), (1, 5, 24, 24)),
    "edvr_infer_5x180x320": ("edvr", "inference", (1, 5, 180, 320), (1, 5, 24, 40)),
    "iconvsr_infer_15x64": ("iconvsr", "inference", (1, 15, 64, 64), (1, 5, 40, 40)),
    "iconvsr_infer_7x180x320": ("iconvsr", "inference", (1, 7, 180, 320), (1, 5, 40, 56)),
    # MMagic's BasicVSRPlusPlusNet (mmcv's DCN computed by torchvision: make_basicvsrpp.py's stand-in)
    "basicvsrpp_infer_15x64": ("basicvsrpp", "inference", (1, 15, 64, 64), (1, 3, 64, 64)),
    "basicvsrpp_infer_7x180x320": ("basicvsrpp", "inference", (1, 7, 180, 320), (1, 3, 64, 72)),
    # one of the layers both models are made of (a 3x3 conv, 64 -> 64 channels, bias), alone:
    # what the two frameworks' convolution kernels give at the models' sizes
    "conv_infer_1x64x64": ("conv3x3", "inference", (1, None, 64, 64), (1, None, 24, 24)),
    "conv_infer_1x180x320": ("conv3x3", "inference", (1, None, 180, 320), (1, None, 24, 40)),
    "conv_grad_1x64x64": ("conv3x3", "grad", (1, None, 64, 64), (1, None, 24, 24)),
    "conv_grad_16x32x32": ("conv3x3", "grad", (16, None, 32, 32), (2, None, 16, 16)),
    "conv_grad_1x180x320": ("conv3x3", "grad", (1, None, 180, 320), (1, None, 24, 40)),
    # BasicVSR++'s deformable layer (modulated DCN 3x3, 128 -> 64, 16 offset groups) alone,
    # torchvision.ops.deform_conv2d against models.deform.deform_conv2d (issue 20)
    "dcn_infer_1x64x64": ("dcn3x3", "inference", (1, None, 64, 64), (1, None, 24, 24)),
    "dcn_infer_1x180x320": ("dcn3x3", "inference", (1, None, 180, 320), (1, None, 24, 40)),
    "dcn_grad_1x64x64": ("dcn3x3", "grad", (1, None, 64, 64), (1, None, 24, 24)),
    "dcn_grad_1x180x320": ("dcn3x3", "grad", (1, None, 180, 320), (1, None, 24, 40)),
}
LAYERS = ("conv3x3", "dcn3x3")  # one-layer cases: ms per call, inputs of `in` channels
SIZES = {  # the published sizes; --quick: narrow ones
    "msrresnet": ({"num_feat": 64, "num_block": 16}, {"num_feat": 16, "num_block": 2}),
    "basicvsr": ({"num_feat": 64, "num_block": 30}, {"num_feat": 16, "num_block": 2}),
    "edvr": (  # EDVR_M_x4_SR_REDS_official's options
        {"num_feat": 64, "num_frame": 5, "deformable_groups": 8, "num_extract_block": 5, "num_reconstruct_block": 10},
        {"num_feat": 16, "num_frame": 5, "deformable_groups": 2, "num_extract_block": 1, "num_reconstruct_block": 1},
    ),
    "basicvsrpp": ({"mid_channels": 64, "num_blocks": 7}, {"mid_channels": 16, "num_blocks": 1}),
    "iconvsr": (  # IconVSR_REDS's options
        {"num_feat": 64, "num_block": 30, "keyframe_stride": 5, "temporal_padding": 2},
        {"num_feat": 16, "num_block": 2, "keyframe_stride": 5, "temporal_padding": 2},
    ),
    "conv3x3": ({"num_feat": 64}, {"num_feat": 16}),
    "dcn3x3": ({"in": 128, "num_feat": 64, "deform_groups": 16}, {"in": 32, "num_feat": 16, "deform_groups": 4}),
}
LOSS = {"msrresnet": "l1", "basicvsr": "charbonnier"}
LEARNING_RATE = {"msrresnet": 2e-4, "basicvsr": 2e-4}
BETAS = (0.9, 0.99)
CHARBONNIER_EPS = 1e-12  # BasicSR's CharbonnierLoss: sqrt(d² + eps); ours: sqrt(d² + eps²)
LAYER_REPS = 10  # the one-conv rows take --reps × this many reps per side
DCN_OFFSET_STD = 2.5  # px: the DCN rows' random offsets (a share of the taps leave the image)
GOAL_INFER = 0.8  # our time ÷ torch's, inference, at most
GOAL_TRAIN = 1 / 1.25  # training: frames/s at least 1.25× torch's
GOAL_DCN = 1.0  # the DCN layer, forward and backward: no slower than torchvision's (issue 20)


# ------------------------------------------------------------------ the PyTorch side


def _torch_dcn(size: dict, shape):
    """A torch module: torchvision's modulated deform conv with its offsets and mask as
    parameters (random: N(0, DCN_OFFSET_STD²) px, U(0, 1)), so a backward pass computes
    every gradient a training step needs (input, offset, mask, weight, bias)."""
    import torch
    from torchvision.ops import deform_conv2d

    n, _, h, w = shape
    cin, cout, dg = size["in"], size["num_feat"], size["deform_groups"]

    class DCN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(cout, cin, 3, 3) / (9 * cin) ** 0.5)
            self.bias = torch.nn.Parameter(torch.rand(cout) - 0.5)
            self.offset = torch.nn.Parameter(DCN_OFFSET_STD * torch.randn(n, 2 * dg * 9, h, w))
            self.mask = torch.nn.Parameter(torch.rand(n, dg * 9, h, w))

        def forward(self, x):
            return deform_conv2d(x, self.offset, self.weight, self.bias, padding=1, mask=self.mask)

    return DCN()


def serve() -> None:
    """The torch server (run by the authors' venv's python): one JSON request per stdin
    line, one JSON reply per stdout line; everything else the packages print goes to stderr."""
    import numpy as np
    import torch

    threads = int(os.environ.get("PUBLISHED_SPEED_THREADS", "2"))
    torch.set_num_threads(threads)
    reply_to = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints must not corrupt the protocol

    import basicsr
    from basicsr.archs.basicvsr_arch import BasicVSR
    from basicsr.archs.srresnet_arch import MSRResNet
    from basicsr.losses.basic_loss import CharbonnierLoss, L1Loss

    nets: dict = {}

    def handle(req: dict) -> dict:
        op = req["op"]
        if op == "info":
            try:
                import torchvision

                tv = torchvision.__version__ if hasattr(torchvision, "ops") else "stand-in"
            except ImportError:
                tv = "none"
            return {
                "torch": torch.__version__,
                "torchvision": tv,
                "basicsr": basicsr.__version__,
                "threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads(),
            }
        case = req["case"]
        if op == "build":
            torch.manual_seed(int(req["seed"]))
            size = req["size"]
            if req["arch"] == "msrresnet":
                net = MSRResNet(3, 3, num_feat=size["num_feat"], num_block=size["num_block"], upscale=4)
                loss = L1Loss()
            elif req["arch"] == "conv3x3":
                net = torch.nn.Conv2d(size["num_feat"], size["num_feat"], 3, padding=1)
                loss = None
            elif req["arch"] == "dcn3x3":
                net, loss = _torch_dcn(size, req["shape"]), None
            elif req["arch"] == "edvr":
                net, loss = _torch_edvr_clip(size), None
            elif req["arch"] == "basicvsrpp":
                net, loss = _torch_basicvsrpp()(**size), None
            elif req["arch"] == "iconvsr":
                from basicsr.archs.basicvsr_arch import IconVSR

                net, loss = IconVSR(**size), None
            else:
                net = BasicVSR(num_feat=size["num_feat"], num_block=size["num_block"])
                loss = CharbonnierLoss(eps=CHARBONNIER_EPS)
            opt = torch.optim.Adam(net.parameters(), lr=float(req["lr"]), betas=BETAS)
            nets[case] = (net, loss, opt)
            sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
            np.savez(req["state_dict"], **sd)
            return {"params": int(sum(p.numel() for p in net.parameters()))}
        net, loss, opt = nets[case]
        if op == "infer":
            x = torch.from_numpy(np.load(req["input"]))
            net.eval()
            times, cpu = [], []
            with torch.no_grad():
                for _ in range(int(req["reps"])):
                    t0, c0 = time.perf_counter(), time.process_time()
                    out = net(x)
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
            if req.get("output"):
                np.save(req["output"], out.numpy())
            return {"times": times, "cpu": cpu}
        if op == "train":
            lq = torch.from_numpy(np.load(req["lq"]))
            gt = torch.from_numpy(np.load(req["gt"]))
            net.train()
            times, cpu, losses = [], [], []
            for _ in range(int(req["reps"])):
                t0, c0 = time.perf_counter(), time.process_time()
                opt.zero_grad()
                value = loss(net(lq), gt)
                value.backward()
                opt.step()
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                losses.append(float(value.detach()))
            return {"times": times, "cpu": cpu, "losses": losses}
        if op == "grad":  # one layer's backward pass: d sum(net(x)·g) / d(x, weight, bias)
            x = torch.from_numpy(np.load(req["input"])).requires_grad_(True)
            g = torch.from_numpy(np.load(req["cotangent"]))
            times, cpu = [], []
            for _ in range(int(req["reps"])):
                t0, c0 = time.perf_counter(), time.process_time()
                x.grad = None
                net.zero_grad()
                net(x).backward(g)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            if req.get("output"):
                grads = {k: p.grad.numpy() for k, p in net.named_parameters()}
                np.savez(req["output"], x=x.grad.numpy(), **grads)
            return {"times": times, "cpu": cpu}
        if op == "drop":
            nets.pop(case)
            return {}
        raise ValueError(f"unknown op {op!r}")

    for line in sys.stdin:
        try:
            reply = handle(json.loads(line))
        except Exception as e:  # noqa: BLE001 — the driver reports it
            reply = {"error": f"{type(e).__name__}: {e}"}
        reply_to.write(json.dumps(reply) + "\n")
        reply_to.flush()


def has_torchvision(python: str) -> bool:
    """Whether `python` loads the real torchvision (its compiled ops: the DCN rows need it)."""
    import subprocess

    probe = "import torchvision.ops, torch; torchvision.ops.deform_conv2d(*[torch.zeros(1, 1, 3, 3)] * 2 + [torch.zeros(1, 1, 1, 1)])"  # noqa: E501
    probe = probe.replace("[torch.zeros(1, 1, 3, 3)] * 2", "[torch.zeros(1, 1, 3, 3), torch.zeros(1, 2, 3, 3)]")
    return os.path.exists(python) and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


def _torch_basicvsrpp():
    """MMagic's BasicVSRPlusPlusNet class, loaded as tests/data/published/make_basicvsrpp.py
    does (its module files only, mmcv's compiled DCN replaced by torchvision's, the same op)."""
    import importlib.util

    path = os.path.join(ROOT, "tests", "data", "published", "make_basicvsrpp.py")
    spec = importlib.util.spec_from_file_location("make_basicvsrpp", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._import_mmagic()


def _torch_edvr_clip(size: dict):
    """BasicSR's EDVR run over a clip as its video test does: one call per frame, on the
    frame's window from `generate_frame_indices` (reflection_circle); the same state_dict."""
    import torch
    from basicsr.archs.edvr_arch import EDVR
    from basicsr.data.data_util import generate_frame_indices

    class EDVRClip(EDVR):
        def forward(self, x):
            t = x.size(1)
            windows = [generate_frame_indices(i, t, size["num_frame"], "reflection_circle") for i in range(t)]
            return torch.stack([super(EDVRClip, self).forward(x[:, idx]) for idx in windows], dim=1)

    return EDVRClip(**size)


class TorchSide:
    """The driver's handle on the torch server."""

    def __init__(self, python: str, threads: int):
        import subprocess

        env = dict(os.environ)
        if not has_torchvision(python):  # the stand-in only where the real one does not load
            env["PYTHONPATH"] = REFSTUB + os.pathsep + env.get("PYTHONPATH", "")
        env["PUBLISHED_SPEED_THREADS"] = str(threads)
        env["OMP_NUM_THREADS"] = str(threads)
        env.pop("XLA_FLAGS", None)
        self.proc = subprocess.Popen(
            [python, os.path.abspath(__file__), "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )  # fmt: skip

    def __call__(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"published_speed.py: the torch server stopped (exit {self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise SystemExit(f"published_speed.py: torch side: {reply['error']}")
        return reply

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ------------------------------------------------------------------ our side


def _jax_model(arch: str, size: dict, state_dict: dict):
    """(model, params) of our port with torch's weights."""
    from vsr_jax import models
    from vsr_jax.models import spynet
    from vsr_jax.pretrained import convert

    if arch == "msrresnet":
        model = models.create_model("msrresnet", 4, {"features": size["num_feat"], "num_blocks": size["num_block"]})
        params = convert.state_dict_to_params(state_dict)
    elif arch == "dcn3x3":
        from vsr_jax.models import deform

        class DCN:  # the layer as `model.apply({"params": p}, x)`, offsets and mask in the params
            def apply(self, variables, x):
                p = variables["params"]
                dg = size["deform_groups"]
                return deform.deform_conv2d(
                    x, p["offset"], p["mask"], p["kernel"], p["bias"], padding=1, deform_groups=dg
                )

        model = DCN()
        params = {
            "kernel": state_dict["weight"].transpose(2, 3, 1, 0),
            "bias": state_dict["bias"],
            "offset": state_dict["offset"].transpose(0, 2, 3, 1),
            "mask": state_dict["mask"].transpose(0, 2, 3, 1),
        }
    elif arch == "conv3x3":
        from vsr_jax.models import layers

        model = layers.Conv(size["num_feat"], 3)  # the models' layer (layers.conv2d)
        params = {"kernel": state_dict["weight"].transpose(2, 3, 1, 0), "bias": state_dict["bias"]}
    elif arch == "edvr":
        model = models.create_model("edvr", 4, dict(size, padding="reflection_circle"))
        params = convert.state_dict_to_params(state_dict)
    elif arch == "basicvsrpp":
        from vsr_jax.pretrained import mmagic

        model = models.create_model(arch, 4, dict(size))
        params = convert.state_dict_to_params(mmagic.to_ours(state_dict), skip=spynet.buffer_keys("spynet."))
    else:  # basicvsr, iconvsr
        model = models.create_model(arch, 4, dict(size))
        params = convert.state_dict_to_params(state_dict, skip=spynet.buffer_keys("spynet."))
    return model, params


def _train_config(arch: str, size: dict, shape):
    from vsr_jax import config_lib

    n, t, h, _ = shape
    config = config_lib.base_config()
    config.model.name = arch
    if arch == "msrresnet":
        config.model.features, config.model.num_blocks = size["num_feat"], size["num_block"]
    else:
        config.model.num_feat, config.model.num_block = size["num_feat"], size["num_block"]
    config.data.scale = 4
    config.data.num_frames = t or 1
    config.data.patch_size = h
    config.batch_size = n
    config.loss.pixel = LOSS[arch]
    config.loss.charbonnier_eps = CHARBONNIER_EPS**0.5
    config.learning_rate = LEARNING_RATE[arch]
    config.adam_b1, config.adam_b2 = BETAS
    config.lr_schedule = "constant"
    config.ema_decay = 0.0
    return config


def _to_torch_layout(x):
    """(N, h, w, 3) -> (N, 3, h, w); (N, T, h, w, 3) -> (N, T, 3, h, w)."""
    import numpy as np

    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def _from_torch_layout(x):
    import numpy as np

    return np.moveaxis(x, -3, -1)


def _stats(calls) -> dict:
    """Wall and process CPU seconds of each timed call: [(wall, cpu), ...]."""
    import numpy as np

    wall, cpu = [c[0] for c in calls], [c[1] for c in calls]
    return {
        "min_s": float(np.min(wall)),
        "median_s": float(np.median(wall)),
        "times_s": wall,
        "cpu_min_s": float(np.min(cpu)),
        "cpu_s": cpu,
    }


def run_case(name: str, torch_side: TorchSide, tmp: str, reps: int, quick: bool) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    arch, task, shape, quick_shape = CASES[name]
    shape = quick_shape if quick else shape
    size = SIZES[arch][1 if quick else 0]
    n, t, h, w = shape
    frames = n * (t or 1)
    sd_path = os.path.join(tmp, f"{name}_sd.npz")
    built = torch_side(
        op="build",
        case=name,
        arch=arch,
        size=size,
        shape=list(shape),
        seed=0,
        lr=LEARNING_RATE.get(arch, 0.0),
        state_dict=sd_path,
    )
    with np.load(sd_path) as f:
        state_dict = dict(f)
    model, params = _jax_model(arch, size, state_dict)
    rng = np.random.default_rng(1)
    channels = {"conv3x3": size.get("num_feat"), "dcn3x3": size.get("in")}.get(arch, 3)
    lr_shape = (n, h, w, channels) if t is None else (n, t, h, w, channels)
    lr = rng.uniform(0, 1, lr_shape).astype(np.float32)
    row = {"case": name, "arch": arch, "task": task, "shape": list(shape), "frames": frames, "size": size}
    row["params"] = built["params"]
    jax_times, torch_times = [], []

    if task == "inference":
        lr_path, out_path = os.path.join(tmp, f"{name}_lr.npy"), os.path.join(tmp, f"{name}_out.npy")
        np.save(lr_path, _to_torch_layout(lr))
        params_d = jax.device_put(params)
        x = jax.device_put(lr)
        fn = jax.jit(lambda p, x: model.apply({"params": p}, x))
        t0 = time.perf_counter()
        ours = np.asarray(jax.block_until_ready(fn(params_d, x)))  # compiles
        row["jax_first_call_s"] = time.perf_counter() - t0
        first = torch_side(op="infer", case=name, input=lr_path, reps=1, output=out_path)
        row["torch_first_call_s"] = first["times"][0]
        theirs = _from_torch_layout(np.load(out_path))
        row["max_abs_diff"] = float(np.max(np.abs(ours - theirs)))
        os.remove(out_path)
        del ours, theirs

        def jax_once():
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(params_d, x))
            return time.perf_counter() - t0, time.process_time() - c0

        def torch_once():
            r = torch_side(op="infer", case=name, input=lr_path, reps=1)
            return r["times"][0], r["cpu"][0]
    elif task == "grad":
        cot = rng.uniform(-1, 1, lr_shape[:-1] + (size["num_feat"],)).astype(np.float32)
        x_path, g_path = os.path.join(tmp, f"{name}_x.npy"), os.path.join(tmp, f"{name}_g.npy")
        out_path = os.path.join(tmp, f"{name}_grads.npz")
        np.save(x_path, _to_torch_layout(lr))
        np.save(g_path, _to_torch_layout(cot))
        params_d, x, g = jax.device_put(params), jax.device_put(lr), jax.device_put(cot)
        objective = lambda p, x: jnp.sum(model.apply({"params": p}, x) * g)  # noqa: E731
        fn = jax.jit(jax.grad(objective, argnums=(1, 0)))
        t0 = time.perf_counter()
        dx, dp = jax.block_until_ready(fn(params_d, x))  # compiles
        row["jax_first_call_s"] = time.perf_counter() - t0
        first = torch_side(op="grad", case=name, input=x_path, cotangent=g_path, reps=1, output=out_path)
        row["torch_first_call_s"] = first["times"][0]
        with np.load(out_path) as theirs:
            ours = {"x": dx, "weight": dp["kernel"], "bias": dp["bias"]}
            want = {"x": _from_torch_layout(theirs["x"]), "weight": theirs["weight"].transpose(2, 3, 1, 0)}
            want["bias"] = theirs["bias"]
            for k in ("offset", "mask") if arch == "dcn3x3" else ():
                ours[k], want[k] = dp[k], _from_torch_layout(theirs[k])
            # relative to each gradient's largest entry (sums over thousands of terms)
            row["max_abs_diff"] = max(
                float(np.max(np.abs(np.asarray(ours[k]) - want[k])) / np.max(np.abs(want[k]))) for k in want
            )

        def jax_once():
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(params_d, x))
            return time.perf_counter() - t0, time.process_time() - c0

        def torch_once():
            r = torch_side(op="grad", case=name, input=x_path, cotangent=g_path, reps=1)
            return r["times"][0], r["cpu"][0]
    else:
        from vsr_jax import optimizers, sharding, train_state, train_step

        hr = rng.uniform(0, 1, lr_shape[:-3] + (4 * h, 4 * w, 3)).astype(np.float32)
        lq_path, gt_path = os.path.join(tmp, f"{name}_lq.npy"), os.path.join(tmp, f"{name}_gt.npy")
        np.save(lq_path, _to_torch_layout(lr))
        np.save(gt_path, _to_torch_layout(hr))
        config = _train_config(arch, size, shape)
        mesh = sharding.make_mesh(jax.devices()[:1])
        tx = optimizers.make_optimizer(config)
        state = train_state.create_train_state(config, model, tx, mesh)
        rep = sharding.replicated(mesh)  # as create_train_state's: the step then compiles once
        params_d = jax.device_put(jax.tree.map(jnp.asarray, params), rep)
        state = state.replace(generator=train_state.Net(params_d, jax.jit(tx.init, out_shardings=rep)(params_d)))
        five = (lambda a: a) if t is not None else (lambda a: a[:, None])
        batch = sharding.global_batch({"lr": five(lr), "hr": five(hr)}, mesh)
        step = train_step.jit_train_step(train_step.make_train_step(model, tx, config), mesh)
        holder = {"state": state}
        t0 = time.perf_counter()
        holder["state"], metrics = step(holder["state"], batch)
        ours_loss = float(metrics["loss"])
        row["jax_first_call_s"] = time.perf_counter() - t0
        first = torch_side(op="train", case=name, lq=lq_path, gt=gt_path, reps=1)
        row["torch_first_call_s"] = first["times"][0]
        row["first_loss"] = {"jax": ours_loss, "torch": first["losses"][0]}
        row["loss_abs_diff"] = abs(ours_loss - first["losses"][0])

        def jax_once():
            t0, c0 = time.perf_counter(), time.process_time()
            holder["state"], m = step(holder["state"], batch)
            jax.block_until_ready(m)
            return time.perf_counter() - t0, time.process_time() - c0

        def torch_once():
            r = torch_side(op="train", case=name, lq=lq_path, gt=gt_path, reps=1)
            return r["times"][0], r["cpu"][0]

    if arch == "conv3x3" and not quick:
        reps *= LAYER_REPS  # milliseconds per call: one rep is at the mercy of a scheduler tick
    row["reps"] = reps
    for rep in range(reps):  # ABBA: neither side always runs first
        for side in ("jax", "torch") if rep % 2 == 0 else ("torch", "jax"):
            (jax_times if side == "jax" else torch_times).append(jax_once() if side == "jax" else torch_once())
    torch_side(op="drop", case=name)
    row["jax"], row["torch"] = _stats(jax_times), _stats(torch_times)
    row["ratio_min"] = row["jax"]["min_s"] / row["torch"]["min_s"]  # our time ÷ theirs
    row["ratio_median"] = row["jax"]["median_s"] / row["torch"]["median_s"]
    row["ratio_cpu_min"] = row["jax"]["cpu_min_s"] / row["torch"]["cpu_min_s"]  # CPU seconds, ours ÷ theirs
    row["goal"] = GOAL_INFER if task == "inference" else GOAL_TRAIN  # a layer's backward: the training goal
    if arch == "dcn3x3":
        row["goal"] = GOAL_DCN
    row["meets_goal"] = row["ratio_min"] <= row["goal"]
    for f in os.listdir(tmp):
        if f.startswith(name):
            os.remove(os.path.join(tmp, f))
    return row


# ------------------------------------------------------------------ the table


def _cell(row: dict, side: str) -> str:
    frames = row["frames"]
    if row["arch"] in LAYERS:
        return f"{1000 * row[side]['min_s']:.2f} / {1000 * row[side]['median_s']:.2f}"
    if row["task"] == "inference":
        return f"{1000 * row[side]['min_s'] / frames:.0f} / {1000 * row[side]['median_s'] / frames:.0f}"
    return f"{frames / row[side]['min_s']:.2f} / {frames / row[side]['median_s']:.2f}"


def _what(row: dict) -> str:
    n, t, h, w = row["shape"]
    if row["arch"] == "conv3x3":
        what = "forward" if row["task"] == "inference" else "backward (input, kernel, bias)"
        return f"one 3×3 conv {row['size']['num_feat']}→{row['size']['num_feat']}, {n}×{h}×{w}, {what}"
    if row["arch"] == "dcn3x3":
        size = row["size"]
        what = "forward" if row["task"] == "inference" else "backward (input, offset, mask, kernel, bias)"
        return (
            f"one modulated DCN 3×3 {size['in']}→{size['num_feat']}, {size['deform_groups']} offset groups, "
            f"{n}×{h}×{w}, {what}"
        )
    names = {"msrresnet": "MSRResNet ×4", "basicvsr": "BasicVSR", "edvr": "EDVR_M", "iconvsr": "IconVSR"}
    arch = (names | {"basicvsrpp": "BasicVSR++"})[row["arch"]]
    if row["task"] == "inference":
        frames = f"{t} frames " if t else "one frame "
        return f"{arch} inference, {frames}{h}×{w}"
    loss = {"msrresnet": "L1", "basicvsr": "Charbonnier"}[row["arch"]]
    return f"{arch} training, {n}×{t or 1}×{h}×{w}, {loss} + Adam"


def markdown(result: dict) -> str:
    v = result["versions"]
    lines = [
        f"{result['date']} · {result['machine']} · torch {v['torch']}"
        + (f" + torchvision {v['torchvision']}" if v.get("torchvision", "none") not in ("none", "stand-in") else "")
        + f" + basicsr {v['basicsr']} eager, "
        f"{result['torch_threads']} threads · jax {v['jax']} (XLA:CPU, {result['xla_threads']} threads), "
        f"flax {v['flax']} · XLA_FLAGS `{result['xla_flags'] or '(none)'}` · "
        f"{result['reps']} alternating reps per side"
        + (
            f" ({result['reps'] * LAYER_REPS} for one conv)"
            if not result["quick"] and any(r["arch"] == "conv3x3" for r in result["rows"])
            else ""
        )
        + ", min / median",
        "",
        "| case | unit | PyTorch (authors' code) | vsr_jax | ours ÷ torch, time (min) | goal | ours ÷ torch, CPU s "
        "| outputs max \\|diff\\| |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        unit = "ms/call" if r["arch"] in LAYERS else "ms/frame" if r["task"] == "inference" else "frames/s"
        check = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else f"loss {r['loss_abs_diff']:.1e}"
        check += " (rel.)" if r["task"] == "grad" else ""
        mark = "✓" if r["meets_goal"] else "✗"
        lines.append(
            f"| {_what(r)} | {unit} | {_cell(r, 'torch')} | {_cell(r, 'jax')} | {r['ratio_min']:.2f} "
            f"(median {r['ratio_median']:.2f}) | ≤ {r['goal']:.2f} {mark} | {r['ratio_cpu_min']:.2f} | {check} |"
        )
    return "\n".join(lines)


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3, help="timed calls per side and case (after one warm-up each)")
    p.add_argument("--cases", default="", help=f"comma-separated subset of {','.join(CASES)}")
    p.add_argument("--quick", action="store_true", help="narrow models, small sizes, one rep (a smoke test)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--torch_python", default=TORCH_PYTHON, help="python of a venv with torch (+ torchvision) + basicsr")
    p.add_argument("--out", default=os.path.join(HERE, "results", "published_speed"), help="writes OUT.json, OUT.md")
    p.add_argument("--readme", default="", help="a README whose <!-- BLOCK --> block to rewrite")
    p.add_argument("--block", default="published_speed", help="the README block's name")
    args = p.parse_args()
    cases = [c for c in args.cases.split(",") if c] or list(CASES)
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"published_speed.py: unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")
    import subprocess

    real_torchvision = has_torchvision(args.torch_python)
    stub = "" if real_torchvision else f"sys.path.insert(0, {REFSTUB!r}); "
    probe = f"import sys; {stub}import torch, basicsr.archs.basicvsr_arch"

    if (
        not os.path.exists(args.torch_python)
        or subprocess.run([args.torch_python, "-c", probe], capture_output=True).returncode
    ):
        raise SystemExit(
            f"published_speed.py: torch + basicsr 1.4.2 are not installed for {args.torch_python} "
            "(make that venv as tests/data/published/README.md says, or pass --torch_python)"
        )
    needs_torchvision = [c for c in cases if CASES[c][0] == "dcn3x3"]
    if needs_torchvision and not real_torchvision:
        raise SystemExit(
            f"published_speed.py: case {needs_torchvision[0]} needs the real torchvision, which {args.torch_python} "
            "does not load (make the venv with torchvision as tests/data/published/README.md says, or leave the "
            "dcn_* cases out with --cases)"
        )
    reps = 1 if args.quick else args.reps

    import tempfile

    sys.path.insert(0, HERE)
    import flax
    import jax
    import jaxlib
    from common import machine_name, replace_block

    import vsr_jax  # noqa: F401 — its import sets the users' default XLA flags before JAX's backend starts

    torch_side = TorchSide(args.torch_python, args.threads)
    info = torch_side(op="info")
    rows = []
    with tempfile.TemporaryDirectory(prefix="published_speed_") as tmp:
        for name in cases:
            row = run_case(name, torch_side, tmp, reps, args.quick)
            print(
                f"{name}: torch {row['torch']['min_s']:.3f} s, ours {row['jax']['min_s']:.3f} s (min per call), "
                f"ours/torch {row['ratio_min']:.2f}; check "
                f"{row.get('max_abs_diff', row.get('loss_abs_diff')):.1e}",
                flush=True,
            )
            rows.append(row)
    torch_side.close()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_name(),
        "quick": args.quick,
        "reps": reps,
        "torch_threads": info["threads"],
        "torch_interop_threads": info["interop_threads"],
        "xla_threads": len(os.sched_getaffinity(0)),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "versions": {
            "torch": info["torch"],
            "torchvision": info["torchvision"],
            "basicsr": info["basicsr"],
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "flax": flax.__version__,
            "python": sys.version.split()[0],
        },
        "rows": rows,
    }
    text = markdown(result)
    print("\n" + text)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    with open(args.out + ".md", "w") as f:
        f.write(text + "\n")
    if args.readme and not replace_block(args.readme, args.block, text):
        print(f"{args.readme} has no <!-- {args.block} --> block; the table is in {args.out}.md")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve()
    else:
        main()

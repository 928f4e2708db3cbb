"""BasicSR 1.4.2's `generate_frame_indices` on a grid of cases, for tests/test_frame_windows.py.

PYTHONPATH=tests/data/published/refstub /tmp/refvenv/bin/python tests/data/published/make_frame_indices.py
"""

import json
import pathlib

from basicsr.data.data_util import generate_frame_indices

HERE = pathlib.Path(__file__).parent


def main() -> None:
    cases = []
    for padding in ("replicate", "reflection", "reflection_circle", "circle"):
        for num_frames in (3, 5, 7):
            for total in range(num_frames, 2 * num_frames + 3):
                rows = [generate_frame_indices(i, total, num_frames, padding) for i in range(total)]
                cases.append({"padding": padding, "num_frames": num_frames, "total": total, "indices": rows})
    path = HERE / "frame_indices.json"
    path.write_text(json.dumps(cases, separators=(",", ":")) + "\n")
    print(f"wrote {path}: {len(cases)} cases")


if __name__ == "__main__":
    main()

"""Draw a models folder's sample requests from labelled test data: for each label, a sequence both shipped models
answer with its true label (native onnxruntime, after the service's resampling), and the golden outputs the Deno
tests must reproduce (golden.json). The same selection as `build.py --samples`, for a folder built earlier.

    python3 scripts/models/samples.py --models wasm-models --dataset datasets/mocap/test.jsonl.gz \\
        --count 4 --labels punch,walk,run,backflip
"""
import argparse
import json
from pathlib import Path

from build import session, write_samples
from dataset import read_jsonl


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="a models folder with manifest.json")
    ap.add_argument("--dataset", required=True, help="labelled test sequences (JSONL or JSONL.gz)")
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--labels", default=None, help="comma-separated labels to draw first, in order")
    args = ap.parse_args()
    out = Path(args.models)
    m = json.loads((out / "manifest.json").read_text())
    rows = [r for r in read_jsonl(args.dataset) if r.get("label") is not None]
    check = write_samples(out, rows, args.count, m["edge"]["windowFrames"], m["edge"]["labels"],
                          session(out / m["edge"]["file"]), session(out / m["cloud"]["file"]),
                          args.labels.split(",") if args.labels else None)
    print(f"{check['count']} samples written to {out / 'samples'}, each answered with its true label by both models")


if __name__ == "__main__":
    main()

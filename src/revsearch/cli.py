"""`revsearch` command line: a thin map from subcommands to the functions of `api`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from revsearch import api
from revsearch.errors import RevsearchError
from revsearch.ingest import LABEL_MODES
from revsearch.search import TARGETS, QueryTrack


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("settings (also REVSEARCH_<NAME> environment variables)")
    g.add_argument("--db", help="Milvus Lite file (*.db) or server URI http://host:19530")
    g.add_argument("--home", help="data directory (default ~/.local/share/revsearch)")
    g.add_argument("--space", help="embedding space by name (see `revsearch models`); "
                   "default: the one --pipeline/--embedder/--flip name (sface)")
    g.add_argument("--pipeline", choices=["face", "baseline"],
                   help="face (default) or the AWS-demo whole-image baseline")
    g.add_argument("--backbone", choices=["efficientnet_lite0", "onnx"],
                   help="baseline CNN (onnx: --model-path)")
    g.add_argument("--detector", choices=["yunet", "dlib"])
    g.add_argument("--embedder", choices=["sface", "dlib", "sface_dlib", "onnx"],
                   help="face embedder: sface (default, fast), sface_dlib (both models "
                   "fused: more accurate, ~4.5x slower ingest), dlib, onnx (--model-path)")
    g.add_argument("--flip", action="store_true", default=None,
                   help="flip test-time augmentation (2x embedding cost)")
    g.add_argument("--runtime", choices=["auto", "openvino", "onnxruntime"],
                   help="engine for the ONNX embedders (auto: OpenVINO when installed)")
    g.add_argument("--model-path", help="ArcFace-style ONNX file for --embedder onnx")
    g.add_argument("--model-sha256", help="expected SHA-256 of --model-path")
    g.add_argument("--threshold", type=float, help="match threshold (default: calibrated)")
    g.add_argument("--workers", type=int, help="worker processes for ingest (default: cores)")
    g.add_argument("--video-fps", type=float,
                   help="sample videos at most this many frames/s (default 5; 0: all)")
    g.add_argument("--video-every", type=int, help="sample at most every N-th video frame")
    g.add_argument("--video-max-frames", type=int, help="frames sampled per video at most")
    g.add_argument("--hnsw-m", type=int, help="server: HNSW degree of new collections (16)")
    g.add_argument("--hnsw-ef-construction", type=int,
                   help="server: HNSW build width of new collections (200)")
    g.add_argument("--search-ef", type=int, help="server: HNSW search width (max(64, 2k))")
    g.add_argument("--aggregation", choices=["quality", "mean", "prototypes", "single"],
                   help="how a video face track becomes its descriptor (default quality)")
    g.add_argument("-v", "--verbose", action="store_true")
    return p


def _settings(args: argparse.Namespace) -> dict:
    names = ("db", "home", "space", "pipeline", "backbone", "detector", "embedder", "flip",
             "runtime", "model_path", "model_sha256", "threshold", "workers", "video_fps",
             "video_every", "video_max_frames", "aggregation", "hnsw_m", "hnsw_ef_construction",
             "search_ef")
    return {n: getattr(args, n) for n in names}


def cmd_index(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.no_progress:
        settings["progress"] = False
    with api.connect(**settings) as rs:
        report = rs.index(args.paths, labels=args.labels, sync=args.sync, report=args.report)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print(report.summary())
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    with api.connect(**_settings(args)) as rs:
        results = rs.search(args.query, args.k, face=args.face, all_faces=args.all_faces,
                            track=args.track, all_tracks=args.all_tracks, target=args.target,
                            include_query=args.include_query)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return 0
    for result in results:
        if not result.hits:
            print(f"nothing indexed to search in {rs.settings.db_uri} (target "
                  f"{args.target}): run `revsearch index FOLDER` first", file=sys.stderr)
        f = result.face
        if rs.space.metric == "L2":
            note = "whole image; score = minus the L2 distance, no match threshold"
        elif result.threshold is None:
            note = "cosine similarity; no calibrated threshold"
        else:
            note = f"cosine similarity; match threshold {result.threshold:.3f}"
        if result.track is not None:
            t = result.track
            print(f"query {result.query} track {t.index} ({t.start:.1f}-{t.end:.1f} s, "
                  f"{t.frames} frames) ({note})")
        else:
            print(f"query {result.query} face {f.index} box {f.box} ({note})")
        for h in result.hits:
            verdict = {True: "match", False: "no match", None: "?"}[h.match]
            label = f"  [{h.label}]" if h.label else ""
            where = (f"track {h.face_index} at {h.start:.1f}-{h.end:.1f} s (frame {h.frame})"
                     if h.media_type == "video" else f"face {h.face_index}")
            print(f"{h.rank:3d}  {h.similarity:6.3f}  {verdict:8s}  {h.path}  "
                  f"{where} box {[round(v) for v in h.box]}{label}")
    return 0


def cmd_faces(args: argparse.Namespace) -> int:
    with api.connect(**_settings(args)) as rs:
        faces = rs.faces(args.query)
    if args.json:
        print(json.dumps([asdict(f) for f in faces], indent=2))
    elif not faces:
        print(f"no face found in {args.query}")
    else:
        for f in faces:
            if isinstance(f, QueryTrack):
                mark = "  (default person of interest: most prominent)" if f.default else ""
                print(f"track {f.index}: {f.start:.1f}-{f.end:.1f} s, {f.frames} frames, "
                      f"best frame {f.frame} box {f.box}{mark}")
                continue
            mark = "  (default person of interest: largest)" if f.default else ""
            print(f"face {f.index}: box x={f.box[0]} y={f.box[1]} w={f.box[2]} h={f.box[3]} "
                  f"score {f.score:.3f}{mark}")
    return 0 if faces else 5


def cmd_verify(args: argparse.Namespace) -> int:
    with api.connect(**_settings(args)) as rs:
        v = rs.verify(args.a, args.b, face_a=args.face_a, face_b=args.face_b)
    if args.json:
        print(json.dumps(asdict(v), indent=2))
        return 0
    if v.match is None:
        verdict = "no calibrated threshold: no decision"
    else:
        verdict = (f"{'same person' if v.match else 'different people'} "
                   f"(threshold {v.threshold:.3f})")
    print(f"similarity {v.similarity:.3f}: {verdict}; compared face {v.face_a.index} of "
          f"{v.a} and face {v.face_b.index} of {v.b}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with api.connect(**_settings(args)) as rs:
        rows = rs.remove(args.paths)
        db = rs.settings.db_uri
    if args.json:
        print(json.dumps({"rows": rows}))
    else:
        print(f"removed {rows} rows (files and their faces or tracks) from {db}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with api.connect(**_settings(args)) as rs:
        stats = rs.stats()
    print(json.dumps(stats, indent=2) if args.json else
          "\n".join(f"{k}: {v}" for k, v in stats.items()))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from revsearch.config import load_settings
    from revsearch.eval import calibrate
    from revsearch.eval.datasets import default_lfw_root
    from revsearch.spaces import calibration

    settings = load_settings(**_settings(args))
    lfw = Path(args.lfw) if args.lfw else default_lfw_root()
    command = "revsearch calibrate " + " ".join(sys.argv[2:])
    result = calibrate.calibrate(settings, lfw, args.far, command=command.strip())
    out = Path(args.out) if args.out else (
        calibration.packaged_dir() if args.package else settings.home / "calibration")
    path = calibration.save(result, out)
    print(json.dumps(asdict(result), indent=2))
    print(f"written to {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from revsearch.config import load_settings
    from revsearch.eval import lfw as evaluate
    from revsearch.eval import report
    from revsearch.eval.datasets import default_lfw_root

    settings = load_settings(**_settings(args))
    lfw = Path(args.lfw) if args.lfw else default_lfw_root()
    out = Path(args.out)
    command = "revsearch " + " ".join(sys.argv[1:])
    if args.task == "ytf":
        from revsearch.eval import ytf as evaluate_video
        from revsearch.eval.datasets import default_ytf_root

        ytf = Path(args.ytf) if args.ytf else default_ytf_root()
        result = evaluate_video.evaluate_ytf(ytf, settings, out, people=args.people,
                                             occlude_frames=args.occlude, command=command)
        print((out / f"ytf_{result['pipeline']}.md").read_text())
        return 0
    if args.task == "occlusion":
        result = evaluate.evaluate_occlusion(lfw, settings, out, _eval_db(settings),
                                             queries=args.queries, command=command)
        print((out / f"occlusion_lfw_{result['pipeline']}.md").read_text())
        return 0
    if args.task == "ann":
        from revsearch.eval import ann

        gallery = evaluate.build_gallery(lfw / "lfw-deepfunneled", settings,
                                         _eval_db(settings))
        result = ann.compare_indexes(gallery.face_vectors, n_queries=args.queries)
        print(ann.write_report(result, out, command).read_text())
        return 0
    runs = [replace(settings, pipeline=p) for p in ("face", "baseline")] if args.compare \
        else [settings]
    results = [evaluate.evaluate_lfw(lfw, s, out, _eval_db(s)) for s in runs]
    path = report.lfw_markdown(out, results, command)
    if args.compare:
        for r in results:  # each pipeline's own page too
            report.lfw_markdown(out, [r], command)
    print(path.read_text())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    copied = api.migrate(args.source, args.target, args.space or None)
    for key, counts in copied.items():
        print(f"{key}: copied {counts['images']} files, {counts['faces']} faces, "
              f"{counts['tracks']} track descriptors to {args.target}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from revsearch.config import load_settings
    from revsearch.spaces import OnnxInput, Registry

    settings = load_settings(**_settings(args))
    registry = Registry(settings.home)
    if args.action == "add":
        if bool(args.path) == bool(args.fuse):
            raise RevsearchError("models add: give --path FILE (an ONNX model) or "
                                 "--fuse A,B (a fusion of registered spaces)")
        if args.fuse:
            space = registry.add_fusion(args.name, args.fuse.split(","))
        else:
            conv = OnnxInput(args.size, args.mean, args.std, not args.bgr)
            space = registry.add_onnx(args.name, args.path, args.sha256 or "", onnx_input=conv,
                                      licence=args.licence or "")
        print(f"registered {space.name}: {space.dim}-d, {space.description}; "
              f"calibrate it with `revsearch calibrate --space {space.name}`")
        return 0
    if args.action == "remove":
        registry.remove(args.name)
        print(f"removed {args.name} from {registry.path} (its collections in your "
              f"databases are left as they are)")
        return 0
    rows = [api.describe_space(s, settings) for s in registry.spaces()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        cal = r["calibration"]
        status = (f"calibrated: threshold {cal['threshold']:.4f} at FAR {cal['target_far']:g}"
                  if cal else ("ranks only (no match decision)" if not r["decides"]
                               else "not calibrated"))
        print(f"{r['name']}  [{'built-in' if r['builtin'] else 'registered'}] "
              f"{r['kind']}, {r['dim'] or '?'}-d, {r['metric']}; {status}")
        print(f"    {r['description']}" + (f"; licence: {r['licence']}" if r["licence"] else ""))
        for f in r["files"]:
            print(f"    {f['name']}: {f['where']}  sha256 {f['sha256'] or '(not pinned)'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from revsearch import serve

    settings = _settings(args)
    if args.max_upload_bytes:
        settings["max_upload_bytes"] = args.max_upload_bytes
    serve.serve(host=args.host, port=args.port, **settings)
    return 0


def _eval_db(settings) -> str:
    from revsearch.spaces import space_for

    return str(settings.home / "eval" / f"lfw_{space_for(settings).key}.db")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="revsearch", description="Reverse visual search of people in photos.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", parents=[common],
                       help="add the images and videos under folders to the index")
    p.add_argument("paths", nargs="+")
    p.add_argument("--labels", choices=LABEL_MODES, default="auto",
                   help="identity labels: auto (LFW layout), parent (folder name), none")
    p.add_argument("--sync", action="store_true",
                   help="also remove indexed files under PATHS that no longer exist")
    p.add_argument("--report", help="where to write the JSONL report (default under --home)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", parents=[common],
                       help="find images and videos of the person in QUERY (photo or video)")
    p.add_argument("query", help="an image, a video file or a frame folder")
    p.add_argument("-k", type=int, default=10, help="number of results to return")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--face", type=int, help="photo: search for face I (see `revsearch faces`)")
    g.add_argument("--all-faces", action="store_true", help="photo: search for every face")
    g.add_argument("--track", type=int, help="video: search for track I (`revsearch faces`)")
    g.add_argument("--all-tracks", action="store_true", help="video: search for every track")
    p.add_argument("--target", choices=TARGETS, default="all",
                   help="return images, videos, or all (default)")
    p.add_argument("--include-query", action="store_true",
                   help="keep the query file itself in the results if it is indexed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("faces", parents=[common],
                       help="list the faces in an image, or the face tracks of a video")
    p.add_argument("query")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_faces)

    p = sub.add_parser("verify", parents=[common],
                       help="whether two photos show the same person")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--face-a", type=int, help="face I of A (default: the largest)")
    p.add_argument("--face-b", type=int, help="face I of B (default: the largest)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("remove", parents=[common],
                       help="forget indexed files, or everything indexed under folders")
    p.add_argument("paths", nargs="+")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("serve", parents=[common], help="the REST API and web page")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-bytes", type=int, help="largest upload accepted (413 above)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("models", parents=[common],
                       help="list embedding spaces; add or remove your own models")
    p.add_argument("action", nargs="?", choices=["list", "add", "remove"], default="list")
    p.add_argument("name", nargs="?", help="add/remove: the space's name, e.g. arcface_r50")
    p.add_argument("--path", help="add: an ArcFace-style ONNX file (aligned face in, vector out)")
    p.add_argument("--sha256", help="add: the file's expected SHA-256 (pinned either way)")
    p.add_argument("--fuse", help="add: a fusion of registered spaces, e.g. sface,arcface_r50")
    p.add_argument("--size", type=int, default=112, help="add: input side in pixels (112)")
    p.add_argument("--mean", type=float, default=127.5, help="add: input mean (127.5)")
    p.add_argument("--std", type=float, default=127.5, help="add: input std (127.5)")
    p.add_argument("--bgr", action="store_true", help="add: the model takes BGR, not RGB")
    p.add_argument("--licence", help="add: the model's licence, shown with its results")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("stats", parents=[common], help="what the index holds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("calibrate", parents=[common],
                       help="fit the match threshold on LFW pairsDevTrain")
    p.add_argument("--lfw", help="LFW folder with lfw-deepfunneled/ and pairs files")
    p.add_argument("--far", type=float, default=1e-3, help="target false-accept rate")
    p.add_argument("--out", help="directory for <pipeline>.json (default: HOME/calibration)")
    p.add_argument("--package", action="store_true",
                   help="write into the installed package (maintainers)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("migrate", help="copy the index to another database (Lite -> server)")
    p.add_argument("source", help="database to read, e.g. ~/.local/share/revsearch/revsearch.db")
    p.add_argument("target", help="database to fill, e.g. http://127.0.0.1:19530")
    p.add_argument("--space", action="append",
                   help="embedding space to copy (default: all), e.g. sface")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("eval", parents=[common], help="measure a pipeline on LFW or YTF")
    p.add_argument("task", choices=["lfw", "ytf", "occlusion", "ann"],
                   help="lfw: retrieval + verification; ytf: video retrieval per "
                        "aggregation; occlusion: occluded LFW queries; ann: Milvus "
                        "index types")
    p.add_argument("--lfw", help="LFW folder with lfw-deepfunneled/ and pairs.txt")
    p.add_argument("--ytf", help="YouTube Faces folder with aligned_images_DB/, splits.txt")
    p.add_argument("--people", type=int, default=0, help="ytf: first N people only (0: all)")
    p.add_argument("--occlude", type=int, default=0,
                   help="ytf: also a run with N frames per video occluded")
    p.add_argument("--compare", action="store_true", help="face and baseline side by side")
    p.add_argument("--out", default="eval-results", help="where to write JSON, MD, PNG")
    p.add_argument("--queries", type=int, default=500,
                   help="ann, occlusion: number of queries")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except RevsearchError as exc:
        print(f"revsearch: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("revsearch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""`revsearch` command line: a thin map from subcommands to the functions of `api`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from revsearch import api, config, logs
from revsearch.errors import DatabaseLockedError, RevsearchError
from revsearch.ingest import LABEL_MODES
from revsearch.search import TARGETS, QueryTrack

log = logging.getLogger(__name__)

ENV_NOTE = ("Every setting is also an environment variable: --video-fps is "
            f"{config.ENV_PREFIX}VIDEO_FPS (a flag wins over the variable).")


class _LazyChoices:
    """A setting's choices, asked of their registry only when argparse shows or checks
    them. (Added to an argument group, an argument is not formatted at once, as one
    added to the parser itself is.)"""

    def __init__(self, setting: config.Declared) -> None:
        self._setting = setting
        self._values: tuple[str, ...] | None = None

    def _get(self) -> tuple[str, ...]:
        if self._values is None:
            self._values = self._setting.choices() or ()
        return self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __contains__(self, value: object) -> bool:
        return value in self._get()


_METAVARS = {int: "N", float: "X", Path: "DIR"}


def _flag(setting: config.Declared) -> str:
    return "--" + setting.name.replace("_", "-")


def _add_setting(target, setting: config.Declared, shown: bool) -> None:
    kwargs: dict = {"dest": setting.name, "default": None}
    if setting.kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif setting.kind is tuple:  # a list of folders: `--watch A B`, repeated, or A:B
        kwargs.update(action="extend", nargs="+", metavar="DIR")
    else:
        kwargs["type"] = str if setting.kind is Path else setting.kind
        kwargs["metavar"] = _METAVARS.get(setting.kind) or setting.name.upper()
    choices = setting.info.choices
    if choices is not None and shown:  # a hidden flag's value is ignored, not checked
        kwargs["choices"] = _LazyChoices(setting) if callable(choices) else choices
        kwargs.pop("metavar", None)
    help_text = setting.info.help
    if setting.shown_default():
        help_text += f" (default: {setting.shown_default()})"
    kwargs["help"] = help_text.replace("%", "%%") if shown else argparse.SUPPRESS
    target.add_argument(_flag(setting), **kwargs)


def _add_settings(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags of the settings `command` uses, in their groups. The others are still
    accepted (older scripts pass them everywhere) but hidden, and warned about."""
    settings = config.declared()
    used = [s for s in settings if command in s.info.commands]
    for group, title in config.GROUPS.items():
        members = [s for s in used if s.info.group == group]
        if members:
            target = parser.add_argument_group(title)
            for s in members:
                _add_setting(target, s, shown=True)
    for s in settings:
        if command not in s.info.commands:
            _add_setting(parser, s, shown=False)
    parser.set_defaults(used_settings=tuple(s.name for s in used))


def _settings(args: argparse.Namespace) -> dict:
    """The settings given as flags, as keyword overrides for `load_settings`."""
    used = set(args.used_settings)
    for s in config.declared():
        if s.name not in used and getattr(args, s.name, None) is not None:
            log.warning("%s has no effect on `revsearch %s`; ignored", _flag(s), args.command)
    return {name: getattr(args, name) for name in args.used_settings}


def cmd_index(args: argparse.Namespace) -> int:
    try:
        rs = api.connect(**_settings(args))
    except DatabaseLockedError as locked:
        report = _hand_off(args, locked)  # a running `revsearch serve` holds the database
    else:
        with rs:
            report = rs.index(args.paths, labels=args.labels, sync=args.sync,
                              report=args.report)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print(report.summary())
    return 0


def _hand_off(args: argparse.Namespace, locked: DatabaseLockedError):
    """Index through the server that holds the Lite database, following its progress."""
    from revsearch import handoff
    from revsearch.ingest.run import _progress_bar

    settings = config.load_settings(**_settings(args))
    info = handoff.running_server(settings)
    if info is None:
        raise locked  # no server of ours announced itself: nobody to ask
    from revsearch.spaces import space_for

    served = handoff.Client(info).call("GET", "/api/stats")["pipeline"]
    if served != space_for(settings).key:
        raise RevsearchError(f"the revsearch server at {info.url} holds the database and "
                             f"indexes into the {served} space, not {space_for(settings).key}"
                             f": stop it to index with other models")
    print(f"revsearch: the database is held by the revsearch server at {info.url} "
          f"(pid {info.pid}); handing the job to it", file=sys.stderr)
    if args.report:
        log.warning("--report is ignored: the server writes the report (its path is shown "
                    "at the end)")
    bar, shown = None, 0

    def progress(done: int, total: int) -> None:
        nonlocal bar, shown
        if bar is None:
            bar = _progress_bar(total, settings.progress)
        bar.update(done - shown)
        shown = done

    try:
        return handoff.run_remote(info, args.paths, labels=args.labels, sync=args.sync,
                                  on_progress=progress)
    finally:
        if bar is not None:
            bar.close()


def cmd_search(args: argparse.Namespace) -> int:
    if args.person is not None:
        return _search_person(args)
    if args.query is None:
        raise RevsearchError("search: give a QUERY photo or video, or --person NAME")
    with api.connect(**_settings(args)) as rs:
        results = rs.search(args.query, args.k or 10, face=args.face, all_faces=args.all_faces,
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
        else:
            note = describe_decision(result.decision)
        if result.track is not None:
            t = result.track
            print(f"query {result.query} track {t.index} ({t.start:.1f}-{t.end:.1f} s, "
                  f"{t.frames} frames) ({note})")
        else:
            print(f"query {result.query} face {f.index} box {f.box} ({note})")
        if result.person_id is not None:
            print(f"  the query's face is person {result.person_id}"
                  + (f": {result.person}" if result.person else " (unnamed)"))
        if result.occlusion_handled:
            print(f"  face covered ({result.occlusion}): the first hits are re-ranked on "
                  f"the visible part")
        if result.expanded:
            print(f"  person expansion: searched with the faces of person "
                  f"{result.expanded_person_id} too; hits ranked by the blend (last column)")
        for h in result.hits:
            verdict = {True: "match", False: "no match", None: "?"}[h.match]
            label = f"  [{h.label}]" if h.label else ""
            if h.person_id is not None:
                label += f"  (person {h.person_id}{': ' + h.person if h.person else ''})"
            where = (f"track {h.face_index} at {h.start:.1f}-{h.end:.1f} s (frame {h.frame})"
                     if h.media_type == "video" else f"face {h.face_index}")
            score = "" if h.score is None else f"{h.score:7.2f}  "
            if h.visible is not None:
                label += f"  (visible part {h.visible:.3f})"
            blend = "" if h.expanded_score is None else f"  blend {h.expanded_score:.3f}"
            print(f"{h.rank:3d}  {h.similarity:6.3f}  {score}{verdict:8s}  {h.path}  "
                  f"{where} box {[round(v) for v in h.box]}{label}{blend}")
    return 0


def _search_person(args: argparse.Namespace) -> int:
    if args.query is not None:
        raise RevsearchError("search: give either a QUERY or --person NAME, not both")
    with api.connect(**_settings(args)) as rs:
        found = rs.search_person(args.person, k=args.k,
                                 target=args.target)
    if args.json:
        print(json.dumps(asdict(found), indent=2))
        return 0
    p = found.person
    print(f"person {p.person_id}{': ' + p.name if p.name else ''}: {p.faces} faces and "
          f"tracks in {p.media} files (similarity to the person's mean)")
    for h in found.hits:
        where = f"track {h.face_index}" if h.media_type == "video" else f"face {h.face_index}"
        label = f"  [{h.label}]" if h.label else ""
        print(f"{h.rank:3d}  {h.similarity:6.3f}  {h.path}  {where}{label}")
    return 0


def _person_line(p) -> str:
    name = p.name + (" (from labels)" if p.name_source == "label" else "") if p.name \
        else "(unnamed)"
    cover = f"  e.g. {p.cover.path} {'track' if p.cover.kind == 'track' else 'face'} " \
            f"{p.cover.index}" if p.cover and p.cover.path else ""
    return f"{p.person_id:6d}  {name}: {p.faces} faces, {p.media} files{cover}"


def cmd_people(args: argparse.Namespace) -> int:
    with api.connect(**_settings(args)) as rs:
        action, rest = args.action, args.args
        need = {"list": 0, "show": 1, "name": 2, "merge": 2, "remove-face": 1}[action]
        if len(rest) != need:
            usage = {"list": "people [list]", "show": "people show ID|NAME",
                     "name": 'people name ID "Name"', "merge": "people merge INTO OTHER",
                     "remove-face": "people remove-face FACE_ID"}[action]
            raise RevsearchError(f"usage: revsearch {usage}")
        if action == "list":
            report = rs.cluster(recluster=args.recluster)
            people = rs.book.persons(with_paths=args.json)
            if args.json:
                print(json.dumps([asdict(p) for p in people], indent=2))
                return 0
            named = sum(1 for p in people if p.name)
            what = f"{report.new} new faces and tracks placed" if report.new else \
                f"{report.items} faces and tracks clustered" if report.items else "no change"
            print(f"{len(people)} persons ({named} named); {what} ({report.method} at "
                  f"{report.threshold:.3f}; {report.seconds:.1f} s)")
            shown = people if args.all else [p for p in people if p.faces > 1 or p.name]
            for p in shown[:args.limit or None]:
                print(_person_line(p))
            hidden = len(people) - len(shown[:args.limit or None])
            if hidden:
                print(f"... and {hidden} more (--all shows single-face persons, --limit 0 "
                      f"all lines, --json everything)")
            return 0
        if action == "show":
            person = rs.person(rest[0])
        elif action == "name":
            person = rs.name_person(rest[0], rest[1])
        elif action == "merge":
            person = rs.merge_people(rest[0], rest[1])
        else:
            person = rs.remove_face(rest[0])
    if args.json:
        print(json.dumps(asdict(person), indent=2))
        return 0
    if action == "remove-face":
        print(f"moved {rest[0]} to a person of its own:")
    print(_person_line(person))
    for item in person.items or []:
        what = "track" if item.kind == "track" else "face"
        sim = f"{item.similarity:6.3f}" if item.similarity is not None else "     ?"
        label = f"  [{item.label}]" if item.label else ""
        print(f"  {sim}  {item.path}  {what} {item.index}  id {item.item_id}{label}")
    return 0


def describe_decision(d) -> str:
    """One line on how matches were decided: the operating point, or why none."""
    if d.threshold is None:
        return f"cosine similarity; no match decision: {d.note}"
    what = "cosine similarity" if d.score == "cosine" else f"cosine, then {d.score} score"
    point = f"FAR {d.far:g}" if d.far is not None else "FAR unknown"
    kinds = "".join(f", {k} {t:.3f}" for k, t in d.by_kind.items())
    text = f"{what}; match at {d.score} >= {d.threshold:.3f}{kinds} ({point}"
    text += f", calibrated on {d.source})" if d.source and d.far is not None else ")"
    return text + (f"; {d.note}" if d.note else "")


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
    verdict = {None: "no decision", True: "same person", False: "different people"}[v.match]
    score = "" if v.score is None else f", {v.decision.score} {v.score:.2f}"
    print(f"similarity {v.similarity:.3f}{score}: {verdict}; compared face {v.face_a.index} "
          f"of {v.a} and face {v.face_b.index} of {v.b}")
    print(f"  ({describe_decision(v.decision)})")
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
    from revsearch.eval import calibrate
    from revsearch.eval.datasets import default_lfw_root
    from revsearch.spaces import calibration

    settings = config.load_settings(**_settings(args))
    command = ("revsearch calibrate " + " ".join(sys.argv[2:])).strip()
    if args.folders:
        result = calibrate.calibrate_folders(settings, Path(args.folders), command=command)
    else:
        from revsearch.eval.datasets import default_ytf_root

        lfw = Path(args.lfw) if args.lfw else default_lfw_root()
        ytf = (Path(args.ytf) if args.ytf else default_ytf_root()) if args.kinds else None
        result = calibrate.calibrate(settings, lfw, command=command, ytf_root=ytf)
    out = Path(args.out) if args.out else (
        calibration.packaged_dir() if args.package else settings.home / "calibration")
    path = calibration.save(result, out)
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    for p in result.points:
        fit, check = p.train, p.test or p.train
        lo, hi = check["far_ci"]
        kinds = "".join(f", {k} {t:.4f}" for k, t in p.by_kind.items())
        print(f"FAR {p.far:g}: threshold {p.threshold:.4f}{kinds}; where checked "
              f"({'held-out pairs' if p.test else 'the fitting pairs'}): FAR {check['far']:.2e} "
              f"(95% interval {lo:.1e} to {hi:.1e}, {check['false_accepts']} of "
              f"{check['n_impostor']} impostor pairs), TAR {check['tar']:.4f} of "
              f"{check['n_genuine']} genuine pairs")
        if calibrate.too_few_impostors(p):
            print(f"  warning: {fit['n_impostor']} impostor pairs cannot show a FAR of "
                  f"{p.far:g}: add photos of more people for this operating point")
    print(f"calibrated {result.key} on {result.source}; written to {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from revsearch.eval import lfw as evaluate
    from revsearch.eval import report
    from revsearch.eval.datasets import default_lfw_root

    settings = config.load_settings(**_settings(args))
    lfw = Path(args.lfw) if args.lfw else default_lfw_root()
    out = Path(args.out)
    command = "revsearch " + " ".join(sys.argv[1:])
    if args.task == "people":
        from revsearch.eval import people
        from revsearch.eval.datasets import default_ytf_root
        from revsearch.spaces import space_for

        ytf = Path(args.ytf) if args.ytf else default_ytf_root()
        if args.expansion:
            people.run_expansion(lfw, settings, out, _eval_db(settings), command)
            print((out / "people_expansion.md").read_text())
            return 0
        ytf_db = str(settings.home / "eval" / f"ytf_{space_for(settings).key}.db")
        people.run(lfw, ytf if ytf.is_dir() else None, settings, out, _eval_db(settings),
                   ytf_db, command)
        print((out / "people_lfw.md").read_text())
        return 0
    if args.task == "ytf":
        from revsearch.eval import ytf as evaluate_video
        from revsearch.eval.datasets import default_ytf_root

        ytf = Path(args.ytf) if args.ytf else default_ytf_root()
        result = evaluate_video.evaluate_ytf(ytf, settings, out, people=args.people,
                                             occlude_frames=args.occlude, command=command)
        print((out / f"ytf_{result['pipeline']}.md").read_text())
        return 0
    if args.task == "far":
        from revsearch.eval import far

        ytf = Path(args.ytf) if args.ytf else None
        result = far.evaluate_far(lfw, settings, out, _eval_db(settings), ytf, command)
        print((out / f"far_{result['pipeline']}.md").read_text())
        return 0
    if args.task == "norm":
        from revsearch.eval import norm

        ytf = Path(args.ytf) if args.ytf else None
        result = norm.evaluate_norm(lfw, settings, out, _eval_db(settings), ytf, command)
        print((out / f"norm_{result['pipeline']}.md").read_text())
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
        results = [ann.compare_indexes(gallery.face_vectors, n_queries=args.queries)]
        if args.server:
            results.append(ann.on_a_server(gallery.face_vectors, args.queries))
        print(ann.write_report(results, out, command).read_text())
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
        persons = f", {counts['persons']} persons" if counts.get("persons") else ""
        print(f"{key}: copied {counts['images']} files, {counts['faces']} faces, "
              f"{counts['tracks']} track descriptors{persons} to {args.target}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from revsearch.spaces import OnnxInput, Registry

    settings = config.load_settings(**_settings(args))
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
        points = ", ".join(f"{p['threshold']:.4f} at FAR {p['far']:g}"
                           for p in cal["points"]) if cal else ""
        status = (f"calibrated ({cal['source']}): {points}"
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

    serve.serve(host=args.host, port=args.port, **_settings(args))
    return 0


def _eval_db(settings) -> str:
    from revsearch.spaces import space_for

    return str(settings.home / "eval" / f"lfw_{space_for(settings).key}.db")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="revsearch", description="Reverse visual search of people in photos.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index",
                       help="add the images and videos under folders to the index")
    p.add_argument("paths", nargs="+")
    p.add_argument("--labels", choices=LABEL_MODES, default="auto",
                   help="identity labels: auto (LFW layout), parent (folder name), none")
    p.add_argument("--sync", action="store_true",
                   help="also remove indexed files under PATHS that no longer exist")
    p.add_argument("--report", help="where to write the JSONL report (default under --home)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search",
                       help="find images and videos of the person in QUERY (photo or video)")
    p.add_argument("query", nargs="?", help="an image, a video file or a frame folder")
    p.add_argument("--person", metavar="NAME",
                   help="the media of a person (a name or id, see `revsearch people`)")
    p.add_argument("-k", type=int, default=None,
                   help="number of results to return (default 10; --person: all)")
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

    p = sub.add_parser("people",
                       help="group the indexed faces into persons; name, merge, correct them")
    p.add_argument("action", nargs="?", default="list",
                   choices=["list", "show", "name", "merge", "remove-face"],
                   help="list (default), show ID|NAME, name ID NAME, merge INTO OTHER, "
                        "remove-face FACE_ID (not this person)")
    p.add_argument("args", nargs="*", help="the action's arguments")
    p.add_argument("--recluster", action="store_true",
                   help="cluster every face again (ids, names and feedback are kept)")
    p.add_argument("--all", action="store_true", help="list persons with one face too")
    p.add_argument("--limit", type=int, default=50, help="list at most N lines (0: all)")
    p.add_argument("--json", action="store_true",
                   help="every person with the paths of its media")
    p.set_defaults(func=cmd_people)

    p = sub.add_parser("faces",
                       help="list the faces in an image, or the face tracks of a video")
    p.add_argument("query")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_faces)

    p = sub.add_parser("serve", help="the REST API and web page")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("verify",
                       help="whether two photos show the same person")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--face-a", type=int, help="face I of A (default: the largest)")
    p.add_argument("--face-b", type=int, help="face I of B (default: the largest)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("remove",
                       help="forget indexed files, or everything indexed under folders")
    p.add_argument("paths", nargs="+")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("models",
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

    p = sub.add_parser("stats", help="what the index holds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("calibrate",
                       help="fit the match thresholds at FAR 1e-2, 1e-3, 1e-4 (LFW "
                            "pairsDevTrain, or your own folders)")
    p.add_argument("--lfw", help="LFW folder with lfw-deepfunneled/ and pairs files")
    p.add_argument("--folders", help="fit on your own photos instead: one folder per "
                                     "person (same folder = same person)")
    p.add_argument("--kinds", action="store_true",
                   help="also fit a threshold per video comparison kind (track to track, "
                        "photo to track) on half of the YouTube Faces people")
    p.add_argument("--ytf", help="YouTube Faces folder for --kinds")
    p.add_argument("--json", action="store_true", help="print the whole calibration")
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

    p = sub.add_parser("eval", help="measure a pipeline on LFW or YTF")
    p.add_argument("task", choices=["lfw", "ytf", "occlusion", "ann", "people", "far", "norm"],
                   help="lfw: retrieval + verification; ytf: video retrieval per "
                        "aggregation; occlusion: occluded LFW queries; ann: Milvus "
                        "index types; people: clustering faces into persons (LFW, YTF); "
                        "far: stated vs measured false-accept rate per kind of "
                        "comparison; norm: score normalisation before/after")
    p.add_argument("--lfw", help="LFW folder with lfw-deepfunneled/ and pairs.txt")
    p.add_argument("--ytf", help="YouTube Faces folder with aligned_images_DB/, splits.txt")
    p.add_argument("--people", type=int, default=0, help="ytf: first N people only (0: all)")
    p.add_argument("--occlude", type=int, default=0,
                   help="ytf: also a run with N frames per video occluded")
    p.add_argument("--compare", action="store_true", help="face and baseline side by side")
    p.add_argument("--expansion", action="store_true",
                   help="people: plain queries against person query expansion on LFW "
                        "retrieval (people_expansion.json/.md)")
    p.add_argument("--out", default="eval-results", help="where to write JSON, MD, PNG")
    p.add_argument("--queries", type=int, default=500,
                   help="ann, occlusion: number of queries")
    p.add_argument("--server", action="store_true",
                   help="ann: also on a local Milvus server (the `milvus` test package)")
    p.set_defaults(func=cmd_eval)

    for name, p in sub.choices.items():
        p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
        if name != "migrate":  # its databases are arguments; it uses no setting
            p.epilog = ENV_NOTE
            _add_settings(p, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(verbose=args.verbose)
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

"""Match / no-match threshold calibration at each operating point (FAR 1e-2, 1e-3, 1e-4).

On LFW (`calibrate`): a threshold is the cosine similarity at which a stated false-accept
rate (FAR) is reached on *impostor* pairs: every pair of different people among the
images of `pairsDevTrain.txt` (millions of pairs, so a FAR of 1e-3 or 1e-4 is estimated
from thousands of errors, not from one or two of the file's 1,100 listed negatives).
`pairsDevTest.txt` then checks it on held-out people, with an exact binomial interval on
the measured FAR.

On a user's own labelled folders (`calibrate_folders`: one folder per person): every pair
of photos in one folder is genuine, every pair across folders an impostor pair; the
thresholds are fitted on all of them and each point states its pair counts and the
interval on its FAR, so a small collection shows how little it can promise.

Each point also gets a threshold on the AS-norm score (`revsearch.norm`), fitted the same
way with a cohort sampled from the fitting images. The result is written as JSON
(`revsearch.spaces.calibration`) and read at search time.

A threshold answers a verification question ("same person?") for one comparison.
Searching a gallery of N other people compares the query with all of them, so expect
about FAR x N false matches per query: choose the operating point with the gallery size
in mind.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from revsearch.config import Settings
from revsearch.errors import RevsearchError
from revsearch.eval.datasets import Pair, lfw_image, read_pairs
from revsearch.eval.metrics import binomial_interval
from revsearch.faces.pipeline import Pipeline, central_face, largest_face
from revsearch.media import load_image
from revsearch.norm import Cohort, NormParams, asnorm
from revsearch.spaces.calibration import FARS, Calibration, OperatingPoint

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
DEFAULT_TARGET_FAR = 1e-3


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """The smallest threshold t with (impostor scores >= t) / n <= far."""
    scores = np.sort(np.asarray(impostor, dtype=np.float64))[::-1]
    if len(scores) == 0:
        raise ValueError("no impostor scores")
    allowed = int(np.floor(far * len(scores)))
    if allowed >= len(scores):
        return float(scores[-1])
    # Accepting >= t admits exactly `allowed` scores when t sits just above the next one.
    return float(np.nextafter(scores[allowed], np.inf))


def rates(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> dict:
    """TAR and FAR at `threshold`, with the counts and the FAR's 95% exact interval."""
    # float64: numpy would cast the threshold down to float32 scores and round it away.
    genuine = np.asarray(genuine, dtype=np.float64)
    impostor = np.asarray(impostor, dtype=np.float64)
    accepted = int((impostor >= threshold).sum())
    return {
        "tar": float((genuine >= threshold).mean()) if len(genuine) else float("nan"),
        "far": accepted / len(impostor) if len(impostor) else float("nan"),
        "n_genuine": len(genuine),
        "n_impostor": len(impostor),
        "false_accepts": accepted,
        "far_ci": [round(v, 8) for v in binomial_interval(accepted, len(impostor))],
    }


# -- scores ----------------------------------------------------------------------------

def embed_images(pipeline: Pipeline, paths: list[Path],
                 pick: str = "central") -> dict[Path, np.ndarray]:
    """One vector per image that shows a face: the central face (LFW's labelled one) or
    the largest (a user's photos)."""
    vectors = {}
    for path in paths:
        try:
            image = load_image(path)
        except (RevsearchError, OSError) as exc:  # a bad file is skipped, and said so
            log.warning("skipping %s: %s", path, exc)
            continue
        faces = pipeline.detect(image)
        idx = central_face(faces, image.shape) if pick == "central" else largest_face(faces)
        if idx is None:
            continue
        vectors[path] = pipeline.embedder.embed(image, [faces[idx]])[0]
    return vectors


def all_pair_scores(matrix: np.ndarray, names: np.ndarray, norm: Cohort | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor scores of every pair of rows (same / different name); AS-norm
    scores against `norm` when given."""
    sims = matrix @ matrix.T
    if norm is not None:
        stats = norm.stats(matrix)
        sims = asnorm(sims, stats, stats)
    upper = np.triu(np.ones_like(sims, dtype=bool), k=1)
    same = names[:, None] == names[None, :]
    return sims[upper & same], sims[upper & ~same]


def _lfw_vectors(pipeline: Pipeline, lfw_root: Path, pairs: list[Pair]
                 ) -> tuple[dict[Path, np.ndarray], int]:
    images = lfw_root / "lfw-deepfunneled"
    paths = sorted({lfw_image(images, p.name1, p.num1) for p in pairs}
                   | {lfw_image(images, p.name2, p.num2) for p in pairs})
    return embed_images(pipeline, paths), len(paths)


def pair_scores(pipeline: Pipeline, lfw_root: Path, pairs: list[Pair],
                norm: Cohort | None = None) -> dict:
    """Genuine scores of the listed same pairs, impostor scores of all cross-identity pairs
    of the listed images, and how many images had no face (their pairs are dropped)."""
    vectors, n_images = _lfw_vectors(pipeline, lfw_root, pairs)
    return _listed_pair_scores(vectors, n_images, lfw_root, pairs, norm)


def _listed_pair_scores(vectors: dict[Path, np.ndarray], n_images: int, lfw_root: Path,
                        pairs: list[Pair], norm: Cohort | None = None) -> dict:
    images = lfw_root / "lfw-deepfunneled"
    kept = sorted(vectors)
    row = {p: i for i, p in enumerate(kept)}
    matrix = np.stack([vectors[p] for p in kept])
    names = np.array([p.parent.name for p in kept])
    sims = matrix @ matrix.T
    if norm is not None:
        stats = norm.stats(matrix)
        sims = asnorm(sims, stats, stats)
    genuine = [float(sims[row[a], row[b]]) for p in pairs if p.same
               for a, b in [(lfw_image(images, p.name1, p.num1),
                             lfw_image(images, p.name2, p.num2))]
               if a in row and b in row]
    upper = np.triu(np.ones_like(sims, dtype=bool), k=1)
    impostor = sims[upper & (names[:, None] != names[None, :])]
    return {"genuine": np.array(genuine), "impostor": impostor,
            "images": n_images, "no_face": n_images - len(vectors)}


# -- fitting ---------------------------------------------------------------------------

def fit_points(train: dict, test: dict | None = None, fars: tuple[float, ...] = FARS,
               norm_train: dict | None = None, norm_test: dict | None = None
               ) -> list[OperatingPoint]:
    """One operating point per FAR: the threshold fitted on `train`'s impostor scores,
    its rates there and on `test` (dicts of genuine / impostor scores)."""
    points = []
    for far in fars:
        t = threshold_at_far(train["impostor"], far)
        point = OperatingPoint(far=far, threshold=t,
                               train=_summary(train, t), test=_summary(test, t))
        if norm_train is not None:
            point.norm_threshold = threshold_at_far(norm_train["impostor"], far)
            point.train["norm"] = _summary(norm_train, point.norm_threshold)
            if norm_test is not None:
                point.test["norm"] = _summary(norm_test, point.norm_threshold)
        points.append(point)
    return points


def _summary(scores: dict | None, threshold: float) -> dict:
    if scores is None:
        return {}
    out = rates(scores["genuine"], scores["impostor"], threshold)
    out.update({k: scores[k] for k in ("images", "no_face", "people") if k in scores})
    return out


def _norm_params(vectors: dict[Path, np.ndarray], loose: float,
                 given: NormParams | None) -> NormParams:
    """AS-norm parameters: cohort faces a face matches at the loosest point (`loose`) are
    not strangers (revsearch.norm); cohort size and top k as given, or chosen on these
    (DevTrain) images by `revsearch.eval.norm.choose_params`."""
    if given is not None:
        return replace(given, exclude_above=loose)
    from revsearch.eval.norm import choose_params

    kept = sorted(vectors)
    chosen = choose_params(np.stack([vectors[p] for p in kept]),
                           np.array([p.parent.name for p in kept]), loose)["chosen"]
    return replace(NormParams(), **chosen, exclude_above=loose)


def _cohort(vectors: dict[Path, np.ndarray], params: NormParams) -> Cohort:
    return Cohort.sample((vectors[p] for p in sorted(vectors)), params)


def calibrate(settings: Settings, lfw_root: Path, command: str = "",
              fars: tuple[float, ...] = FARS, norm: NormParams | None = None,
              ytf_root: Path | None = None) -> Calibration:
    """Fit the thresholds on pairsDevTrain at each FAR; report them on pairsDevTest.

    The normalisation's cohort size and top k are chosen on DevTrain as `revsearch eval
    norm` chooses them, unless `norm` gives them.

    With `ytf_root`, each point also gets a threshold per video comparison kind (track
    to track, photo to track), fitted the same way on the fitting half of the YouTube
    Faces people whose names are not in DevTrain (`revsearch.eval.far`)."""
    pipeline = Pipeline(settings, threads=max(1, settings.workers))
    [train_pairs] = read_pairs(lfw_root / "pairsDevTrain.txt")
    [test_pairs] = read_pairs(lfw_root / "pairsDevTest.txt")
    train_vectors, n_train = _lfw_vectors(pipeline, lfw_root, train_pairs)
    test_vectors, n_test = _lfw_vectors(pipeline, lfw_root, test_pairs)
    train = _listed_pair_scores(train_vectors, n_train, lfw_root, train_pairs)
    test = _listed_pair_scores(test_vectors, n_test, lfw_root, test_pairs)
    norm = _norm_params(train_vectors, threshold_at_far(train["impostor"], max(fars)), norm)
    # The cohort comes from the fitting people only, for the check on DevTest as well.
    cohort = _cohort(train_vectors, norm)
    points = fit_points(
        train, test, fars,
        _listed_pair_scores(train_vectors, n_train, lfw_root, train_pairs, cohort),
        _listed_pair_scores(test_vectors, n_test, lfw_root, test_pairs, cohort))
    source = "LFW pairsDevTrain (checked on pairsDevTest)"
    if ytf_root is not None:
        _fit_kinds(points, pipeline, settings, lfw_root, ytf_root)
        source += "; video kinds: half of the YouTube Faces people"
    return Calibration(
        key=pipeline.key, model_sha256=pipeline.space.digest,
        detector=pipeline.space.detector_name(settings), points=points, source=source,
        norm={**asdict(norm), "cohort_size": len(cohort)}, command=command,
        created=time.strftime("%Y-%m-%d"))


def _fit_kinds(points: list[OperatingPoint], pipeline: Pipeline, settings: Settings,
               lfw_root: Path, ytf_root: Path) -> None:
    from revsearch.eval.datasets import ytf_videos
    from revsearch.eval.far import devtrain_names, fit_by_kind, ytf_halves, ytf_population
    from revsearch.eval.far import ytf_scores as kind_scores
    from revsearch.eval.ytf import cached_tracks

    tracked = cached_tracks(ytf_videos(ytf_root), pipeline, settings.home / "eval")
    pop = ytf_population(tracked, pipeline.space.aggregation(settings), settings.prototypes,
                         devtrain_names(lfw_root))
    fit_people, _ = ytf_halves(list(pop.names))
    fitted = fit_by_kind(kind_scores(pop.subset(fit_people), ""), tuple(p.far for p in points))
    for p in points:
        p.by_kind = {k: t for k, t in fitted[p.far].items()}


def folder_images(root: Path) -> dict[str, list[Path]]:
    """`root/<person>/<photo>`: the photos of each person folder (2+ folders needed)."""
    people = {}
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        photos = sorted(f for f in folder.rglob("*")
                        if f.is_file() and f.suffix.lower() in PHOTO_SUFFIXES)
        if photos:
            people[folder.name] = photos
    return people


def calibrate_folders(settings: Settings, root: Path, command: str = "",
                      fars: tuple[float, ...] = FARS,
                      norm: NormParams | None = None) -> Calibration:
    """Fit the thresholds on a user's labelled folders (same folder = same person).

    Every photo's largest face is embedded; all pairs are used for fitting, so the check
    is the exact binomial interval of each point's FAR, not a held-out set."""
    people = folder_images(root)
    if len(people) < 2:
        raise RevsearchError(f"{root}: calibrating needs at least two person folders with "
                             f"photos (one folder per person), found {len(people)}")
    pipeline = Pipeline(settings, threads=max(1, settings.workers))
    paths = [p for photos in people.values() for p in photos]
    vectors = embed_images(pipeline, paths, pick="largest")
    kept = sorted(vectors)
    names = np.array([p.parent.name if p.parent.parent == Path(root) else
                      p.relative_to(root).parts[0] for p in kept])
    if len(set(names)) < 2:
        raise RevsearchError(f"{root}: faces were found in fewer than two person folders")
    matrix = np.stack([vectors[p] for p in kept])
    info = {"images": len(paths), "no_face": len(paths) - len(kept),
            "people": len(set(names))}
    genuine, impostor = all_pair_scores(matrix, names)
    norm = replace(norm or NormParams(), exclude_above=threshold_at_far(impostor, max(fars)))
    cohort = Cohort.sample(matrix, norm)
    scores = {"genuine": genuine, "impostor": impostor, **info}
    norm_scores = None
    if cohort.usable:
        g, i = all_pair_scores(matrix, names, cohort)
        norm_scores = {"genuine": g, "impostor": i, **info}
    return Calibration(
        key=pipeline.key, model_sha256=pipeline.space.digest,
        detector=pipeline.space.detector_name(settings),
        points=fit_points(scores, None, fars, norm_scores), source=f"folders {root}",
        norm={**asdict(norm), "cohort_size": len(cohort)} if norm_scores else {},
        command=command, created=time.strftime("%Y-%m-%d"))


def too_few_impostors(point: OperatingPoint) -> bool:
    """The stated FAR cannot be told from a larger one: the interval's upper end is over
    twice the stated rate (a point fitted on too few impostor pairs)."""
    ci = point.train.get("far_ci")
    return bool(ci) and ci[1] > 2 * point.far

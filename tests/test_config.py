"""Settings are declared once (config.py) and the CLI's flags are built from them: fast
checks of the declarations, their precedence, and the generated flags."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

import pytest

from revsearch import cli, config
from revsearch.cli import build_parser
from revsearch.config import Settings, load_settings
from revsearch.errors import SettingsError

SUBCOMMANDS = next(a for a in build_parser()._actions if a.dest == "command").choices
# Every flag the CLI took before settings were declared once, on every subcommand but
# migrate: scripts written then keep working.
OLD_FLAGS = {
    "--db": "x.db", "--home": "h", "--pipeline": "face", "--backbone": "onnx",
    "--detector": "dlib", "--embedder": "sface", "--flip": None, "--runtime": "auto",
    "--model-path": "m.onnx", "--model-sha256": "abc", "--threshold": "0.4",
    "--workers": "2", "--video-fps": "2", "--video-every": "3", "--video-max-frames": "9",
    "--hnsw-m": "32", "--hnsw-ef-construction": "400", "--search-ef": "64",
    "--aggregation": "mean", "-v": None, "--verbose": None,
}
POSITIONALS = {"index": ["photos"], "search": ["q.jpg"], "faces": ["q.jpg"],
               "eval": ["lfw"], "migrate": ["a.db", "b.db"], "verify": ["a.jpg", "b.jpg"],
               "remove": ["photos"]}


def _flags_in_help(command: str) -> set[str]:
    parser = SUBCOMMANDS[command]
    text = parser.format_help()
    shown = {a.dest for a in parser._actions if a.help != argparse.SUPPRESS}
    names = {s.name for s in config.declared()} & shown
    assert all(f"--{n.replace('_', '-')}" in text for n in names)
    return names


def _args(command: str, *flags: str) -> argparse.Namespace:
    return build_parser().parse_args([command, *POSITIONALS.get(command, []), *flags])


def test_every_setting_is_declared_with_its_help_group_and_commands():
    names = [f.name for f in dataclasses.fields(Settings)]
    assert [s.name for s in config.declared()] == names
    for s in config.declared():
        assert s.info.help and s.info.group in config.GROUPS, s.name
        assert set(s.info.commands) <= set(SUBCOMMANDS) - {"migrate"}, s.name
        assert s.kind in (bool, int, float, str, Path, tuple), s.name
    for command in set(SUBCOMMANDS) - {"migrate"}:
        assert any(command in s.info.commands for s in config.declared()), command


def test_defaults_are_unchanged():
    s = Settings()
    assert (s.pipeline, s.embedder, s.detector, s.runtime, s.aggregation) == \
        ("face", "sface", "yunet", "auto", "quality")
    assert (s.flip, s.progress, s.threshold, s.space, s.db) == (False, True, None, "", "")
    assert (s.video_fps, s.video_every, s.video_max_frames, s.prototypes) == (5.0, 1, 1500, 3)
    assert (s.hnsw_m, s.hnsw_ef_construction, s.search_ef) == (16, 200, 0)
    assert (s.max_pixels, s.max_upload_bytes) == (100_000_000, 100 * 1024 * 1024)
    assert s.workers >= 1 and s.home.name == "revsearch"


def test_precedence_defaults_then_environment_then_keywords(monkeypatch, tmp_path):
    monkeypatch.setenv("REVSEARCH_VIDEO_FPS", "2.5")
    monkeypatch.setenv("REVSEARCH_FLIP", "yes")
    monkeypatch.setenv("REVSEARCH_WORKERS", "3")
    monkeypatch.setenv("REVSEARCH_HOME", str(tmp_path / "env_home"))
    monkeypatch.setenv("REVSEARCH_THRESHOLD", "")  # empty counts as unset
    s = load_settings(workers=5, db=None)  # None: not given
    assert (s.video_fps, s.flip, s.workers, s.threshold) == (2.5, True, 5, None)
    assert s.home == tmp_path / "env_home" and s.db == ""
    assert load_settings(home="~/x").home == Path("~/x").expanduser()


def test_folder_lists_from_flags_and_environment(monkeypatch):
    """`--watch A B --watch C`, `--watch A:B` and REVSEARCH_WATCH=A:B all give folders."""
    sep = os.pathsep
    args = _args("serve", "--watch", "a", f"b{sep}c", "--watch", "d", "--allow", "e")
    s = load_settings(**{n: getattr(args, n) for n in args.used_settings})
    assert (s.watch, s.allow) == (("a", "b", "c", "d"), ("e",))
    monkeypatch.setenv("REVSEARCH_WATCH", f"x{sep}{sep}y")
    assert load_settings().watch == ("x", "y") and load_settings(watch=["z"]).watch == ("z",)
    assert Settings().watch == () and "--watch" not in SUBCOMMANDS["index"].format_help()


def test_bad_values_fail_clearly(monkeypatch):
    monkeypatch.setenv("REVSEARCH_WORKERS", "many")
    with pytest.raises(SettingsError, match="REVSEARCH_WORKERS='many'"):
        load_settings()
    monkeypatch.delenv("REVSEARCH_WORKERS")
    monkeypatch.setenv("REVSEARCH_EMBEDDER", "sfcae")
    with pytest.raises(SettingsError, match="choose from sface, dlib"):
        load_settings()
    monkeypatch.delenv("REVSEARCH_EMBEDDER")
    with pytest.raises(ValueError, match="aggregation='median'"):
        load_settings(aggregation="median")


def test_registry_choices_are_read_only_when_needed(monkeypatch):
    calls = []

    def names() -> tuple[str, ...]:
        calls.append(1)
        return ("sface", "other")

    declared = [dataclasses.replace(s, info=dataclasses.replace(s.info, choices=names))
                if s.name == "embedder" else s for s in config.declared()]
    monkeypatch.setattr(config, "declared", lambda: declared)
    parser = build_parser()
    assert not calls
    assert parser.parse_args(["index", "x", "--embedder", "other"]).embedder == "other"
    assert calls
    with pytest.raises(SystemExit):
        parser.parse_args(["index", "x", "--embedder", "dlib"])


@pytest.mark.parametrize("command", sorted(set(SUBCOMMANDS) - {"migrate"}))
def test_help_shows_exactly_the_settings_a_subcommand_uses(command):
    used = {s.name for s in config.declared() if command in s.info.commands}
    assert _flags_in_help(command) == used
    text = SUBCOMMANDS[command].format_help()
    assert "REVSEARCH_VIDEO_FPS" in text
    groups = {s.info.group for s in config.declared() if s.name in used}
    titles = [f"\n{title}:\n" for g, title in config.GROUPS.items() if g in groups]
    assert [t for t in titles if t in text] == titles
    assert sorted(titles, key=text.index) == titles  # groups in declared order


@pytest.mark.parametrize("command", sorted(set(SUBCOMMANDS) - {"migrate"}))
def test_old_flags_keep_parsing(command):
    flags = [w for flag, value in OLD_FLAGS.items() for w in (flag, value) if w is not None]
    args = _args(command, *flags)
    assert args.verbose and args.workers == 2 and args.video_fps == 2.0


def test_flags_become_settings_and_win_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REVSEARCH_VIDEO_FPS", "1")
    monkeypatch.setenv("REVSEARCH_DET_SCORE", "0.5")
    args = _args("index", "--video-fps", "2", "--no-progress", "--flip", "--home",
                 str(tmp_path), "--max-pixels", "1000", "--aggregation", "prototypes")
    s = load_settings(**cli._settings(args))
    assert (s.video_fps, s.progress, s.flip, s.home, s.max_pixels, s.aggregation) == \
        (2.0, False, True, tmp_path, 1000, "prototypes")
    assert s.det_score == 0.5  # not given as a flag: the environment's
    args = _args("serve", "--max-upload-bytes", "5", "--no-flip")
    assert cli._settings(args)["max_upload_bytes"] == 5 and cli._settings(args)["flip"] is False


def test_a_flag_the_subcommand_does_not_use_is_ignored_with_a_warning(caplog):
    args = _args("stats", "--workers", "2", "--db", "x.db")
    with caplog.at_level(logging.WARNING, logger="revsearch.cli"):
        given = cli._settings(args)
    assert "workers" not in given and given["db"] == "x.db"
    assert "--workers has no effect on `revsearch stats`" in caplog.text


def test_bad_flag_values_are_usage_errors(capsys):
    for flags in (["--embedder", "sfcae"], ["--workers", "many"], ["--aggregation", "median"]):
        with pytest.raises(SystemExit) as exc:
            _args("index", *flags)
        assert exc.value.code == 2
    assert "invalid choice: 'median'" in capsys.readouterr().err


def test_migrate_takes_its_databases_as_arguments():
    args = _args("migrate", "--space", "sface", "--space", "dlib")
    assert args.space == ["sface", "dlib"] and not hasattr(args, "used_settings")

"""pipelines/storage.py on a local folder and on a real S3 API (moto_server on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import storage


def test_join_and_parent_keep_an_object_store_uri_whole():
    # pathlib folds `s3://genie/tok` into `s3:/genie/tok` (the bug `genie tokenize` had).
    assert storage.join("s3://genie/tok", "tokens") == "s3://genie/tok/tokens"
    assert storage.join("s3://genie/tok/", "a", "b.json") == "s3://genie/tok/a/b.json"
    assert storage.parent("s3://genie/raw/v.mp4") == "s3://genie/raw"
    assert storage.name_of("s3://genie/cur/clips/") == "clips"
    assert storage.join("/data/x", "y") == "/data/x/y"


def test_relative_paths_mean_the_submitting_folder_or_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(storage.SUBMIT_DIR_ENV, raising=False)
    monkeypatch.delenv(storage.SUBMITTED_JOB_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert storage.resolve("data/x") == str(tmp_path / "data" / "x")
    assert storage.resolve("s3://genie/x") == "s3://genie/x"
    assert storage.resolve("/abs/x") == "/abs/x"
    # Inside a job started by `ray job submit`, cwd is Ray's copy of the repo: refuse.
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    with pytest.raises(storage.StoragePathError, match="--out 'data/x' is relative"):
        storage.resolve("data/x", "--out")
    assert storage.resolve("s3://genie/x", "--out") == "s3://genie/x"
    # `genie submit` passes the submitting folder: the path means what the user typed.
    monkeypatch.setenv(storage.SUBMIT_DIR_ENV, "/home/me/project")
    assert storage.resolve("data/x") == "/home/me/project/data/x"


@pytest.mark.parametrize("where", ["local", "s3"])
def test_read_write_exists_and_copy_on_local_and_s3(where, tmp_path, request):
    if where == "s3":
        root = request.getfixturevalue("s3_server").uri("storage-test")
    else:
        root = str(tmp_path / "root")
    target = storage.join(root, "a", "b.json")
    assert not storage.exists(target)
    storage.write_json(target, {"x": 1})
    assert storage.exists(target) and storage.is_file(target)
    assert storage.is_dir(storage.join(root, "a"))
    assert storage.read_json(target) == {"x": 1}
    storage.write_bytes(storage.join(root, "a", "c", "d.bin"), b"\x00" * 10)
    copy = storage.copy_tree(storage.join(root, "a"), tmp_path / "copy")
    assert (copy / "b.json").read_text() == storage.read_bytes(target).decode()
    assert (copy / "c" / "d.bin").read_bytes() == b"\x00" * 10
    local = storage.local_copy(target)
    assert Path(local).read_bytes() == storage.read_bytes(target)

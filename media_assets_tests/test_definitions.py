"""The code location loads with no environment set, and its graph is what the docs say."""

import ast
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

PACKAGE = Path(__file__).resolve().parents[1] / "media_assets"


def test_definitions_load_without_any_environment():
    code = ("from media_assets.definitions import defs; "
            "print(len(defs.resolve_asset_graph().get_all_asset_keys()))")
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "14"  # 5 image, 6 video/audio, index, archive and usage


def test_lineage_runs_from_originals_to_the_catalog():
    from media_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    parents = {key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
               for key in graph.get_all_asset_keys()}
    assert parents == {
        "originals": set(),
        "image_metadata": {"originals"},
        "thumbnails": {"originals"},
        "previews": {"originals"},
        "video_metadata": {"originals"},
        "audio_metadata": {"originals"},
        "poster": {"originals"},
        "web_rendition": {"originals"},
        "audio_preview": {"originals"},
        "waveform": {"originals"},
        "catalog": {"image_metadata", "thumbnails", "previews", "video_metadata",
                    "audio_metadata", "poster", "web_rendition", "audio_preview", "waveform"},
        "catalog_index": {"catalog"},
        "catalog_archive": {"catalog_index"},
        "usage": {"catalog_index"},
    }
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.code_version, f"{key} has no code_version"
        if node.group_name not in ("archive", "maintenance"):
            assert node.partitions_def.name == "batches"
    assert graph.get(AssetKey("originals")).backfill_policy.max_partitions_per_run == 1


def test_batch_steps_run_in_the_runs_own_process():
    from media_assets.definitions import defs

    for job in ("process_batch", "process_images", "process_av"):
        assert defs.resolve_job_def(job).executor_def.name == "in_process"


def test_each_lane_runs_only_its_own_assets():
    from media_assets.definitions import defs

    def assets(job_name: str) -> set[str]:
        job = defs.resolve_job_def(job_name)
        return {key.to_user_string() for key in job.asset_layer.selected_asset_keys}

    assert assets("process_images") == {"originals", "image_metadata", "thumbnails",
                                        "previews", "catalog"}
    assert assets("process_av") == {"originals", "video_metadata", "audio_metadata", "poster",
                                    "web_rendition", "audio_preview", "waveform", "catalog"}
    assert assets("process_batch") == assets("process_images") | assets("process_av")


def test_transcodes_take_a_slot_of_the_transcode_pool():
    from media_assets.definitions import defs

    assert defs.resolve_assets_def("web_rendition").op.pool == "transcode"


def test_the_media_core_and_storage_never_import_dagster():
    for folder in ("media", "storage"):
        for path in (PACKAGE / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                assert not any(n.split(".")[0] == "dagster" for n in names), path


GROUPS = {"ingest", "derivatives", "catalog", "archive", "maintenance"}


def test_every_asset_explains_itself_in_the_catalog():
    from media_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and node.owners == ["team:media-platform"], key
        assert node.group_name in GROUPS, key
        assert node.kinds and "media_assets/media" in node.tags, key


def test_the_readmes_asset_table_matches_the_definitions():
    from media_assets.asset_table import END, START, render

    readme = (PACKAGE.parent / "README.md").read_text()
    current = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert current == render(), "run: python -m media_assets.asset_table --write README.md"

"""The derivative registry: one module per derivative, and everything built from it."""

import importlib
import pkgutil

import media_assets.codec.derivatives as derivatives
from media_assets.codec.derivatives import REGISTRY, for_kind, rebuilt_by
from media_assets.core.policy import Policy


def test_every_derivative_module_registers_exactly_one_derivative():
    modules = [m.name for m in pkgutil.iter_modules(derivatives.__path__) if m.name != "image"]
    registered = {importlib.import_module(f"{derivatives.__name__}.{name}").DERIVATIVE
                  for name in modules}
    assert registered == set(REGISTRY)
    assert len({d.asset for d in REGISTRY}) == len(REGISTRY)


def test_thumbnail_and_preview_share_one_decode_in_the_pass():
    images = for_kind("image")
    assert [d.asset for d in images] == ["thumbnails", "previews"]
    assert images[0].render is images[1].render  # one renderer: one decode for both


def test_the_rebuild_mapping_comes_from_the_registry():
    assert rebuilt_by() == {
        ("image", "thumbnail"): "thumbnails", ("image", "preview"): "previews",
        ("video", "thumbnail"): "poster", ("audio", "thumbnail"): "poster",
        ("video", "web_rendition"): "web_rendition", ("audio", "audio_preview"): "audio_preview",
        ("audio", "waveform"): "waveform",
    }


def test_each_derivative_names_the_spec_of_the_policy_it_is_rendered_with():
    policy, cid = Policy(), "ab" * 32
    for derivative in REGISTRY:
        spec = derivative.current_spec(policy, cid)
        assert spec.name == derivative.name
        assert spec in derivative.specs_to_keep(policy, cid)

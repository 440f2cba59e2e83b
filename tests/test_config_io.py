"""Saved configs carry type tags: a union of configs reads back as the member that was saved."""

from __future__ import annotations

import json
import math

import pytest

from semdyn.config_io import TYPE_KEY, config_to_json, dataclass_from_dict
from semdyn.deform import HexPlaneConfig, MLPDeformConfig
from semdyn.errors import InputError
from semdyn.scene.dynamic import DynamicSceneConfig
from semdyn.train.presets import PRESETS


def _untagged(value):
    if isinstance(value, dict):
        return {k: _untagged(v) for k, v in value.items() if k != TYPE_KEY}
    if isinstance(value, list):
        return [_untagged(v) for v in value]
    return value


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_json(name: str) -> None:
    config = PRESETS[name][1]
    saved = json.loads(json.dumps(config_to_json(config)))  # what a checkpoint holds
    assert saved[TYPE_KEY] == type(config).__name__
    assert dataclass_from_dict(type(config), saved) == config


def test_the_tag_picks_the_union_member_and_an_untagged_file_still_reads() -> None:
    for deformation in (HexPlaneConfig(), MLPDeformConfig(), None):
        config = DynamicSceneConfig(deformation=deformation)
        saved = config_to_json(config)
        assert dataclass_from_dict(DynamicSceneConfig, saved) == config
        assert dataclass_from_dict(DynamicSceneConfig, _untagged(saved)) == config  # written before the tags


def test_a_wrong_tag_is_one_sentence_naming_where() -> None:
    saved = config_to_json(DynamicSceneConfig(deformation=MLPDeformConfig()))
    saved["deformation"][TYPE_KEY] = "SplineConfig"
    with pytest.raises(InputError, match=r"model\.deformation: _type 'SplineConfig' is none of the config types"):
        dataclass_from_dict(DynamicSceneConfig, saved, where="model")
    saved = config_to_json(DynamicSceneConfig())
    with pytest.raises(InputError, match="saved as DynamicSceneConfig, expected HexPlaneConfig"):
        dataclass_from_dict(HexPlaneConfig, saved)


def test_non_finite_floats_and_paths_survive() -> None:
    saved = config_to_json({"a": math.inf, "b": (1, 2)})
    assert saved == {"a": "inf", "b": [1, 2]}

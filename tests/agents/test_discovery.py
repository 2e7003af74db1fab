"""World-model discovery over the installed diffusers."""

import json

from worldpolicy.agents.discovery import DRIVABLE_PIPELINES, discover_world_models


def test_discovery_finds_cosmos3_as_drivable_and_action_capable():
    found = discover_world_models(include_all=True)
    by_name = {p["name"]: p for p in found["pipelines"]}
    assert found["all_pipeline_count"] > 50
    cosmos3 = by_name["Cosmos3OmniPipeline"]
    assert cosmos3["drivable"] and cosmos3["action_capable"] and "action" in cosmos3["action_parameters"]
    # every pipeline we claim to drive exists in the installed diffusers; older Cosmos models take no actions
    assert set(DRIVABLE_PIPELINES) <= set(by_name)
    assert not by_name["CosmosTextToWorldPipeline"]["action_capable"]
    assert all(p["importable"] for p in found["pipelines"])


def test_world_models_command(capsys):
    from worldpolicy.cli import main

    assert main(["world-models", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "Cosmos3OmniPipeline" in [p["name"] for p in printed["pipelines"] if p["drivable"]]
